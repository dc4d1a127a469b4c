package io.kvmesh.core.store;

import java.time.Instant;

/**
 * One row of {@code kv_oplog}: what became of an operation. {@code version} is null when it was rejected;
 * {@code requestHash} fingerprints the request (null for expiries and rows older than the column).
 */
public record OplogRow(String id, String key, String kind, Long version, String outcome, String reason,
                       String requestId, String requestHash, Instant acceptTime, Instant applyTime) {

    public static final String APPLIED = "APPLIED";
    public static final String REJECTED = "REJECTED";
}
