package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.store.OplogRow;

import java.util.List;

/**
 * What one committed batch did: the final state of each key it changed (in key order) and the operation log rows it
 * wrote. Operations recognised as already applied appear in neither.
 */
public record ApplyResult(List<Entry> changed, List<OplogRow> log, int duplicates) {
}
