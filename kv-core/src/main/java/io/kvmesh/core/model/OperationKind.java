package io.kvmesh.core.model;

import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.Operation;

/**
 * What an operation does to its key: the {@code kind} column of {@code kv_oplog} and the {@code change} column of
 * {@code kv} (stored by name). PUT and DELETE come from clients; EXPIRE from the expiry sweep.
 */
public enum OperationKind {
    PUT, DELETE, EXPIRE;

    /** The kind of a queued client operation. */
    public static OperationKind of(Operation.Kind kind) {
        return switch (kind) {
            case PUT -> PUT;
            case DELETE -> DELETE;
            default -> throw new IllegalArgumentException("unknown operation kind " + kind);
        };
    }

    /** The matching kind of a change event. */
    public ChangeEvent.Kind toEvent() {
        return switch (this) {
            case PUT -> ChangeEvent.Kind.PUT;
            case DELETE -> ChangeEvent.Kind.DELETE;
            case EXPIRE -> ChangeEvent.Kind.EXPIRE;
        };
    }
}
