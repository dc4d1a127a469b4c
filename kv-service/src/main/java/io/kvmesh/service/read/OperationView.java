package io.kvmesh.service.read;

import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.store.OplogRow;

import java.time.Instant;

/**
 * An operation's status as the API shows it. {@code state} is PENDING, APPLIED or REJECTED. {@code kind} is the
 * {@link io.kvmesh.core.model.OperationKind} name, or "" while PENDING: a string, as in the proto's
 * {@code OperationStatus.kind}, because a proto enum there would print its zero name instead of "" in the REST JSON.
 */
public record OperationView(String id, String key, String kind, String state, long version, String reason,
                            Instant applyTime) {
    public static final String PENDING = "PENDING";

    static OperationView pending(String id) {
        return new OperationView(id, "", "", PENDING, 0, "", null);
    }

    static OperationView of(OplogRow row) {
        boolean applied = row.outcome() == OperationOutcome.APPLIED;
        return new OperationView(row.id(), row.key(), row.kind().name(), row.outcome().name(),
                applied && row.version() != null ? row.version() : 0,
                row.reason() == null ? "" : row.reason(), row.applyTime());
    }
}
