package io.kvmesh.core.error;

/** Every kind of failure kvmesh reports; the gRPC status of each is decided in one place (the service's StatusMapper). */
public enum KvError {
    /** The request is malformed or exceeds a limit; nothing was changed. */
    INVALID_ARGUMENT,
    /** The key (or operation) does not exist. */
    NOT_FOUND,
    /** A conditional write met a different version than expected. */
    CONFLICT,
    /** A request id already named a different write; nothing was changed (a retry must repeat the same write). */
    REQUEST_ID_REUSED,
    /** No valid token came with the request (auth on): missing, malformed, wrongly signed or expired. */
    UNAUTHENTICATED,
    /** The token is valid but grants no permission for this key or prefix. */
    PERMISSION_DENIED,
    /** A dependency (broker, database) cannot be reached; the request may be retried. */
    UNAVAILABLE,
    /** Anything else; details stay in the server log. */
    INTERNAL
}
