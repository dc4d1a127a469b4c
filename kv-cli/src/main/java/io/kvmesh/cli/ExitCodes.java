package io.kvmesh.cli;

import io.grpc.Status;

/** The documented exit codes of kvctl and the one mapping from a gRPC status to them. */
public final class ExitCodes {
    /** The command did what was asked. */
    public static final int OK = 0;
    /** The key or operation does not exist (NOT_FOUND). */
    public static final int NOT_FOUND = 1;
    /** Bad command line, or input the server rejected as INVALID_ARGUMENT (or a malformed line in `load`). */
    public static final int USAGE = 2;
    /** The service could not be reached or did not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED). */
    public static final int UNAVAILABLE = 3;
    /** A conditional write lost: the version did not match (ABORTED, FAILED_PRECONDITION, ALREADY_EXISTS). */
    public static final int CONFLICT = 4;
    /** Anything else (INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED, ...). */
    public static final int OTHER = 5;
    /** Auth on and no valid token (UNAUTHENTICATED), or the token does not grant it (PERMISSION_DENIED). */
    public static final int NOT_ALLOWED = 6;

    private ExitCodes() {
    }

    /** The exit code for a failed call that ended with this status code. */
    public static int of(Status.Code code) {
        return switch (code) {
            case OK -> OK;
            case NOT_FOUND -> NOT_FOUND;
            case INVALID_ARGUMENT, OUT_OF_RANGE -> USAGE;
            case UNAVAILABLE, DEADLINE_EXCEEDED -> UNAVAILABLE;
            case ABORTED, FAILED_PRECONDITION, ALREADY_EXISTS -> CONFLICT;
            case UNAUTHENTICATED, PERMISSION_DENIED -> NOT_ALLOWED;
            default -> OTHER;
        };
    }
}
