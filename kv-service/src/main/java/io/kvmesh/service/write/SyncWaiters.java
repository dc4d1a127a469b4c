package io.kvmesh.service.write;

import io.kvmesh.queue.v1.ChangeEvent;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/** SYNC writes of this replica waiting for the change event of their operation. */
public final class SyncWaiters {
    private final ConcurrentMap<String, CompletableFuture<ChangeEvent>> waiting = new ConcurrentHashMap<>();

    /** Registers interest in an operation (before it is published, so its event cannot be missed). */
    CompletableFuture<ChangeEvent> register(String operationId) {
        return waiting.computeIfAbsent(operationId, id -> new CompletableFuture<>());
    }

    void forget(String operationId, CompletableFuture<ChangeEvent> future) {
        waiting.remove(operationId, future);
    }

    /** SYNC writes waiting now. */
    public int size() {
        return waiting.size();
    }

    /** Completes the waiter of this event's operation, if this replica has one. */
    public void complete(ChangeEvent event) {
        CompletableFuture<ChangeEvent> f = waiting.remove(event.getOperationId());
        if (f != null) {
            f.complete(event);
        }
    }
}
