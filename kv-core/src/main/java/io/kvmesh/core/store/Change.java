package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;

import java.time.Instant;

/**
 * A key's new state and the operation that produced it: what the applier writes
 * to {@code kv}, and what a Watch catch-up reads back. The accessors are the columns, for binding.
 */
public record Change(Entry entry, String operationId, OperationKind kind) {

    public String key() {
        return entry.key();
    }

    public String value() {
        return entry.value();
    }

    public long version() {
        return entry.version();
    }

    public Instant createTime() {
        return entry.createTime();
    }

    public Instant updateTime() {
        return entry.updateTime();
    }

    public Instant expireTime() {
        return entry.expireTime();
    }
}
