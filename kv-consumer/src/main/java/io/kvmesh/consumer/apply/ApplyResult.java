package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.queue.v1.ChangeEvent;

import java.util.List;

/**
 * What one committed batch did: the final state of each key it changed or replayed an operation of (in key order,
 * for the cache), one event per operation in apply order (replays of operations applied before included, flagged),
 * how many were new ({@code appliedNow}, of which {@code rejected} failed their condition) and how many were
 * recognised as applied before.
 */
public record ApplyResult(List<Entry> changed, List<ChangeEvent> events, int appliedNow, int rejected,
                          int duplicates) {

    public static final ApplyResult EMPTY = new ApplyResult(List.of(), List.of(), 0, 0, 0);
}
