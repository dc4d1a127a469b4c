package io.kvmesh.core.store;

import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.model.OperationOutcome;

import java.time.Instant;

/**
 * One row of {@code kv_oplog}: what became of an operation. {@code version} is null when it was rejected;
 * {@code requestHash} fingerprints the request (null for expiries and rows older than the column).
 */
public record OplogRow(String id, String key, OperationKind kind, Long version, OperationOutcome outcome,
                       String reason, String requestId, String requestHash, Instant acceptTime, Instant applyTime) {
}
