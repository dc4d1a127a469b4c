package io.kvmesh.core.store;

import java.time.Instant;

/** One row of {@code kv_oplog}: what became of an operation. {@code version} is null when it was rejected. */
public record OplogRow(String id, String key, String kind, Long version, String outcome, String reason,
                       String requestId, Instant acceptTime, Instant applyTime) {

    public static final String APPLIED = "APPLIED";
    public static final String REJECTED = "REJECTED";
}
