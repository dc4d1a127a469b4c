package io.kvmesh.core.model;

/**
 * What became of an operation at apply time: the {@code outcome} column of {@code kv_oplog} (stored by name).
 * APPLIED includes an operation that changed nothing (a delete of a missing key: its row has a reason).
 */
public enum OperationOutcome {
    APPLIED, REJECTED
}
