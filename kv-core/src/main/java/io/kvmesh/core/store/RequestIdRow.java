package io.kvmesh.core.store;

import io.kvmesh.core.model.OperationKind;

import java.time.Instant;

/**
 * One row of {@code kv_request_id}: the request that holds a client request id, recorded before its write was
 * published. {@code requestHash} fingerprints what the request does; a retry carries the same one.
 */
public record RequestIdRow(String requestId, String operationId, String requestHash, String key, OperationKind kind,
                           Instant acceptTime) {
}
