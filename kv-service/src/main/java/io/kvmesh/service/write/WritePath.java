package io.kvmesh.service.write;

import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.queue.OperationPublisher;
import io.kvmesh.core.queue.RequestHash;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.Operation;
import io.kvmesh.service.metrics.ServiceMeters;
import io.kvmesh.service.metrics.ServiceMeters.SyncOutcome;

import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Writes: turn a validated request into an operation and publish it. ASYNC is done when the broker confirmed it
 * durable; SYNC then waits for the applier's change event for that operation (or its deadline, then "queued").
 */
public final class WritePath {
    private final OperationPublisher publisher;
    private final SyncWaiters waiters;
    private final Supplier<CompletableFuture<Void>> eventsReady;
    private final RequestIdCheck requestIds;
    private final Clock clock;
    private final ServiceMeters meters;

    /**
     * @param eventsReady completes once change events published from then on reach this replica; a SYNC write waits
     *                    for it before its publish (the subscription is bound on demand, see EventSubscriber)
     */
    public WritePath(OperationPublisher publisher, SyncWaiters waiters, Supplier<CompletableFuture<Void>> eventsReady,
                     RequestIdCheck requestIds, Clock clock, ServiceMeters meters) {
        this.publisher = publisher;
        this.waiters = waiters;
        this.eventsReady = eventsReady;
        this.requestIds = requestIds;
        this.clock = clock;
        this.meters = meters;
    }

    public CompletableFuture<WriteOutcome> put(WriteRequest request) {
        return write(putOperation(request), request);
    }

    /**
     * Many puts, each the write it would be alone, published in the order given (so puts of one key apply in that
     * order) and only once every one was admitted: a request id held by another write refuses the whole call before
     * anything is queued. Completes with the outcomes in order, or with the first failure.
     */
    public CompletableFuture<List<WriteOutcome>> putMany(List<WriteRequest> requests) {
        int n = requests.size();
        List<Operation> ops = new ArrayList<>(n);
        List<CompletableFuture<ChangeEvent>> applied = new ArrayList<>(n);
        CompletableFuture<?>[] admitted = new CompletableFuture<?>[n];
        boolean anySync = false;
        for (int i = 0; i < n; i++) {
            WriteRequest r = requests.get(i);
            Operation op = putOperation(r);
            ops.add(op);
            meters.writeAccepted(op.getId());
            applied.add(r.sync() ? waiters.register(op.getId()) : null);
            anySync |= r.sync();
            admitted[i] = requestIds.admit(op);
        }
        CompletableFuture<Void> ready = CompletableFuture.allOf(admitted);
        if (anySync) {
            ready = ready.thenCompose(v -> eventsReady.get());
        }
        CompletableFuture<List<WriteOutcome>> done = ready.thenCompose(v -> {
            List<CompletableFuture<WriteOutcome>> outcomes = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {   // publish() is called in order: one key's operations keep their order
                Operation op = ops.get(i);
                CompletableFuture<ChangeEvent> event = applied.get(i);
                WriteRequest r = requests.get(i);
                CompletableFuture<Void> confirmed = timedPublish(op).whenComplete((x, e) -> {
                    if (e != null) {
                        meters.writeFailed(op.getId());
                    }
                });
                outcomes.add(event == null ? confirmed.thenApply(x -> new WriteOutcome(WriteOutcome.QUEUED, op.getId(), 0))
                        : confirmed.thenCompose(x -> timedWait(event, r)).thenApply(ev -> ev == null
                                ? new WriteOutcome(WriteOutcome.QUEUED, op.getId(), 0) : outcome(ev)));
            }
            return CompletableFuture.allOf(outcomes.toArray(CompletableFuture<?>[]::new))
                    .thenApply(x -> outcomes.stream().map(CompletableFuture::join).toList());
        });
        return done.whenComplete((r, e) -> {
            for (int i = 0; i < n; i++) {
                if (applied.get(i) != null) {
                    waiters.forget(ops.get(i).getId(), applied.get(i));
                }
            }
        });
    }

    private Operation putOperation(WriteRequest request) {
        Operation.Builder op = base(request).setKind(Operation.Kind.PUT).setValue(request.value());
        if (request.ttl() != null && !request.ttl().isZero()) {
            op.setTtlMillis(request.ttl().toMillis());
        }
        return identify(op, request);
    }

    public CompletableFuture<WriteOutcome> delete(WriteRequest request) {
        Operation.Builder op = base(request).setKind(Operation.Kind.DELETE);
        return write(identify(op, request), request);
    }

    /**
     * Fingerprints the operation and gives it its id: from the client's request id (a retry gets the same id, another
     * request under that id another one), else from Envoy's name for the request (Envoy's retries get the same id),
     * else a fresh time-ordered id.
     */
    private static Operation identify(Operation.Builder op, WriteRequest request) {
        String hash = RequestHash.of(op);
        String id;
        if (!op.getRequestId().isEmpty()) {
            id = OperationCodec.requestOperationId(op.getRequestId(), hash);
        } else if (request.edge() != null) {
            id = OperationCodec.edgeOperationId(request.edge().id(), request.edge().startMillis(), hash);
        } else {
            id = OperationCodec.newOperationId(Micros.toInstant(op.getAcceptTimeMicros()).toEpochMilli());
        }
        return op.setRequestHash(hash).setId(id).build();
    }

    private Operation.Builder base(WriteRequest request) {
        Instant now = clock.instant();
        Operation.Builder b = Operation.newBuilder()
                .setKey(request.key())
                .setRequestId(request.requestId() == null ? "" : request.requestId())
                .setAcceptTimeMicros(Micros.of(now));
        if (request.expectedVersion() != null) {
            b.setExpectedVersion(request.expectedVersion());
        }
        return b;
    }

    private CompletableFuture<WriteOutcome> write(Operation op, WriteRequest request) {
        String id = op.getId();
        meters.writeAccepted(id);
        CompletableFuture<ChangeEvent> applied = request.sync() ? waiters.register(id) : null;
        // a client request id is recorded before the publish: from then on it names this request only; a SYNC write's
        // event must be able to reach this replica before the operation can be applied
        CompletableFuture<Void> admitted = requestIds.admit(op);
        if (applied != null) {
            admitted = admitted.thenCompose(v -> eventsReady.get());
        }
        CompletableFuture<Void> confirmed = admitted.thenCompose(v -> timedPublish(op))
                .whenComplete((v, e) -> {
                    if (e != null) {
                        meters.writeFailed(id);
                    }
                });
        if (applied == null) {
            return confirmed.thenApply(v -> new WriteOutcome(WriteOutcome.QUEUED, id, 0));
        }
        return confirmed
                .thenCompose(v -> timedWait(applied, request))
                .thenApply(event -> event == null ? new WriteOutcome(WriteOutcome.QUEUED, id, 0) : outcome(event))
                .whenComplete((r, e) -> waiters.forget(id, applied));
    }

    private CompletableFuture<Void> timedPublish(Operation op) {
        long start = System.nanoTime();
        return publisher.publish(op).whenComplete((v, e) -> meters.published(System.nanoTime() - start, e == null));
    }

    /** The applier's event for a SYNC write, or null at its deadline; how long it took and how it ended is metered. */
    private CompletableFuture<ChangeEvent> timedWait(CompletableFuture<ChangeEvent> applied, WriteRequest request) {
        long start = System.nanoTime();
        return applied.completeOnTimeout(null, request.syncWait().toMillis(), TimeUnit.MILLISECONDS)
                .whenComplete((event, e) -> {
                    if (e == null) {
                        meters.syncWaited(System.nanoTime() - start, event == null ? SyncOutcome.TIMEOUT
                                : event.getOutcome() == ChangeEvent.Outcome.REJECTED ? SyncOutcome.REJECTED
                                : SyncOutcome.APPLIED);
                    }
                });
    }

    private static WriteOutcome outcome(ChangeEvent event) {
        if (event.getOutcome() == ChangeEvent.Outcome.REJECTED) {
            throw new KvException(KvError.CONFLICT, event.getReason(), Map.of(
                    "current_version", Long.toString(event.getVersion()),
                    "operation_id", event.getOperationId()));
        }
        return new WriteOutcome(WriteOutcome.APPLIED, event.getOperationId(), event.getVersion());
    }
}
