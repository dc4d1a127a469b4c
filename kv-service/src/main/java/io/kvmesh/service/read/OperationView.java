package io.kvmesh.service.read;

import io.kvmesh.core.store.OplogRow;

import java.time.Instant;

/** An operation's status as the API shows it. {@code state} is PENDING, APPLIED or REJECTED. */
public record OperationView(String id, String key, String kind, String state, long version, String reason,
                            Instant applyTime) {
    public static final String PENDING = "PENDING";

    static OperationView pending(String id) {
        return new OperationView(id, "", "", PENDING, 0, "", null);
    }

    static OperationView of(OplogRow row) {
        boolean applied = OplogRow.APPLIED.equals(row.outcome());
        return new OperationView(row.id(), row.key(), row.kind(), row.outcome(),
                applied && row.version() != null ? row.version() : 0,
                row.reason() == null ? "" : row.reason(), row.applyTime());
    }
}
