package io.kvmesh.service.write;

import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.queue.RequestHash;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.queue.v1.Operation;
import io.kvmesh.service.metrics.ServiceMeters;
import io.kvmesh.service.metrics.ServiceMeters.RequestIdOutcome;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * A request id names one request. Before a write with a request id is published, this checks that the id was never
 * used for a different write: first by claiming the operation's mark in Redis with the request's fingerprint (atomic,
 * so two concurrent requests with one id cannot both pass), then, when the claim is new, in the operation log (the
 * mark of an operation applied long ago, or lost with a Redis restart, is gone; its log row is not). An identical
 * retry passes and gets the first outcome (the applier recognises the id); a different write is refused and nothing
 * is published. When neither Redis nor PostgreSQL can answer, the write goes ahead: refusing writes because the
 * check is unavailable would break the promise that writes need only the broker, and the applier still never
 * applies a second operation under an id it knows.
 */
public final class RequestIdCheck {
    private static final Logger log = LoggerFactory.getLogger(RequestIdCheck.class);
    /** A mark written by replicas older than the fingerprint: it proves nothing either way. */
    private static final String LEGACY_MARK = "1";

    private final KvCache cache;
    private final OplogLookups lookups;
    private final Duration markTtl;
    private final ServiceMeters meters;

    public RequestIdCheck(KvCache cache, KvStore store, Executor dbExecutor, Duration markTtl, ServiceMeters meters) {
        this.cache = cache;
        this.lookups = new OplogLookups(store, dbExecutor);
        this.markTtl = markTtl;
        this.meters = meters;
    }

    /** Completes when {@code op} may be published; fails with REQUEST_ID_REUSED when its id named another write. */
    public CompletableFuture<Void> admit(Operation op) {
        if (op.getRequestId().isEmpty()) {
            return CompletableFuture.completedFuture(null); // a time-ordered id: its status needs no mark
        }
        return cache.claim(op.getId(), op.getRequestHash(), markTtl)
                .handle((previous, error) -> error == null ? previous : Optional.<String>empty())
                .thenCompose(previous -> {
                    if (previous.isPresent() && !previous.get().equals(LEGACY_MARK)) {
                        if (previous.get().equals(op.getRequestHash())) {
                            meters.requestIdChecked(RequestIdOutcome.RETRY);
                            return CompletableFuture.completedFuture(null); // an identical retry
                        }
                        meters.requestIdChecked(RequestIdOutcome.REUSED);
                        return CompletableFuture.failedFuture(reused(op, null));
                    }
                    return checkLog(op);
                });
    }

    private CompletableFuture<Void> checkLog(Operation op) {
        return lookups.find(op.getId()).handle((row, error) -> {
            if (error != null) {
                log.debug("operation log unavailable; request id {} not checked against it", op.getRequestId());
                meters.requestIdChecked(RequestIdOutcome.UNCHECKED);
                return null;
            }
            if (row != null && !sameRequest(row, op)) {
                meters.requestIdChecked(RequestIdOutcome.REUSED);
                // the mark now names the request that really holds the id
                if (row.requestHash() != null) {
                    cache.setClaim(op.getId(), row.requestHash(), markTtl).exceptionally(e -> null);
                }
                throw reused(op, row);
            }
            meters.requestIdChecked(row == null ? RequestIdOutcome.NEW : RequestIdOutcome.RETRY);
            return null;
        });
    }

    /** Fingerprints decide; a log row older than fingerprints can only be compared by key and kind. */
    private static boolean sameRequest(OplogRow row, Operation op) {
        if (row.requestHash() != null) {
            return RequestHash.sameRequest(row.requestHash(), op.getRequestHash());
        }
        return row.key().equals(op.getKey()) && row.kind().name().equals(op.getKind().name());
    }

    private static KvException reused(Operation op, OplogRow first) {
        String what = first == null ? "a different write"
                : "a different write (" + first.kind() + " of key '" + first.key() + "')";
        return new KvException(KvError.REQUEST_ID_REUSED, "request id '" + op.getRequestId()
                + "' was already used for " + what + "; a retry must repeat the same write, a new write needs a new"
                + " request id", Map.of("request_id", op.getRequestId(), "operation_id", op.getId()));
    }
}
