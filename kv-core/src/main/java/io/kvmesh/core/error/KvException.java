package io.kvmesh.core.error;

import java.util.Map;

/** A failure with a kind the API maps to a status, and a message safe to show to the client. */
public final class KvException extends RuntimeException {
    private final KvError error;
    private final Map<String, String> details;

    public KvException(KvError error, String message) {
        this(error, message, Map.of());
    }

    /** With machine-readable details for the client (e.g. the current version of a conflict). */
    public KvException(KvError error, String message, Map<String, String> details) {
        super(message);
        this.error = error;
        this.details = Map.copyOf(details);
    }

    public KvException(KvError error, String message, Throwable cause) {
        super(message, cause);
        this.error = error;
        this.details = Map.of();
    }

    public Map<String, String> details() {
        return details;
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
