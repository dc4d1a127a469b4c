package io.kvmesh.service.write;

import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.queue.OperationPublisher;
import io.kvmesh.queue.v1.Operation;

import java.time.Clock;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;

/** Writes: turn a validated request into an operation and publish it; done when the broker confirmed it durable. */
public final class WritePath {
    private final OperationPublisher publisher;
    private final Clock clock;

    public WritePath(OperationPublisher publisher, Clock clock) {
        this.publisher = publisher;
        this.clock = clock;
    }

    /** Queues a put; completes with the operation id once the broker confirmed it. */
    public CompletableFuture<String> put(String key, String value, String requestId) {
        return publish(base(key, requestId).setKind(Operation.Kind.PUT).setValue(value).build());
    }

    /** Queues a delete; completes with the operation id once the broker confirmed it. */
    public CompletableFuture<String> delete(String key, String requestId) {
        return publish(base(key, requestId).setKind(Operation.Kind.DELETE).build());
    }

    private Operation.Builder base(String key, String requestId) {
        Instant now = clock.instant();
        return Operation.newBuilder()
                .setId(OperationCodec.operationId(requestId))
                .setKey(key)
                .setRequestId(requestId == null ? "" : requestId)
                .setAcceptTimeMicros(now.getEpochSecond() * 1_000_000 + now.getNano() / 1_000);
    }

    private CompletableFuture<String> publish(Operation op) {
        return publisher.publish(op).thenApply(ignored -> op.getId());
    }
}
