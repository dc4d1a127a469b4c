package io.kvmesh.core.error;

/** A failure with a kind the API maps to a status, and a message safe to show to the client. */
public final class KvException extends RuntimeException {
    private final KvError error;

    public KvException(KvError error, String message) {
        super(message);
        this.error = error;
    }

    public KvException(KvError error, String message, Throwable cause) {
        super(message, cause);
        this.error = error;
    }

    public KvError error() {
        return error;
    }

    public static KvException invalid(String message) {
        return new KvException(KvError.INVALID_ARGUMENT, message);
    }

    public static KvException unavailable(String message, Throwable cause) {
        return new KvException(KvError.UNAVAILABLE, message, cause);
    }
}
