package io.kvmesh.service.write;

import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.RequestIdRow;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.Operation;
import io.kvmesh.service.metrics.ServiceMeters;
import io.kvmesh.service.metrics.ServiceMeters.RequestIdOutcome;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;

/**
 * A client request id names one request. Before a write with one is published (so before it is acknowledged), its
 * first use is recorded in PostgreSQL ({@code kv_request_id}): the request that records an id first holds it for the
 * operation log's retention, whatever happens to Redis, and any later request under that id is compared with it. An
 * identical retry passes and carries the same operation id (the applier applies it once, and a SYNC retry gets the
 * first outcome); a different write is refused with REQUEST_ID_REUSED and nothing is published.
 * <p>
 * When PostgreSQL cannot record the id, a write with a request id is refused with UNAVAILABLE (retrying it is safe:
 * that is what the id is for): acknowledging it unrecorded could let a later request under the same id take the id
 * from it. Writes without a client request id never come here, so they need only the broker, as before.
 */
public final class RequestIdCheck {
    private final RequestIdClaims claims;
    private final ServiceMeters meters;

    public RequestIdCheck(KvStore store, Executor dbExecutor, ServiceMeters meters) {
        this.claims = new RequestIdClaims(store, dbExecutor);
        this.meters = meters;
    }

    /** Completes when {@code op} may be published; fails with REQUEST_ID_REUSED when its id names another write. */
    public CompletableFuture<Void> admit(Operation op) {
        if (op.getRequestId().isEmpty()) {
            return CompletableFuture.completedFuture(null);
        }
        RequestIdRow claim = new RequestIdRow(op.getRequestId(), op.getId(), op.getRequestHash(), op.getKey(),
                OperationKind.of(op.getKind()), Micros.toInstant(op.getAcceptTimeMicros()));
        return claims.claim(claim).handle((holder, error) -> {
            if (error != null) {
                meters.requestIdChecked(RequestIdOutcome.UNAVAILABLE);
                Throwable cause = error instanceof CompletionException && error.getCause() != null
                        ? error.getCause() : error;
                throw new KvException(KvError.UNAVAILABLE, "a write with a request id needs the database to record "
                        + "the id before it is queued, and the database is unavailable; retry the same write (the "
                        + "request id makes that safe), or send it without a request id", cause);
            }
            if (!holder.operationId().equals(op.getId())) {
                meters.requestIdChecked(RequestIdOutcome.REUSED);
                throw reused(op, holder);
            }
            meters.requestIdChecked(holder.acceptTime().equals(claim.acceptTime())
                    ? RequestIdOutcome.NEW : RequestIdOutcome.RETRY);
            return null;
        });
    }

    private static KvException reused(Operation op, RequestIdRow first) {
        return new KvException(KvError.REQUEST_ID_REUSED, "request id '" + op.getRequestId()
                + "' was already used for a different write (" + first.kind() + " of key '" + first.key()
                + "'); a retry must repeat the same write, a new write needs a new request id",
                Map.of("request_id", op.getRequestId(), "operation_id", first.operationId()));
    }
}
