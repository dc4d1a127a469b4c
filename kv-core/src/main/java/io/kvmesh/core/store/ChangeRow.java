package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;

import java.time.Instant;

/** A row of {@code kv} with the operation that produced its version (null for rows older than that record). */
public record ChangeRow(String key, String value, long version, Instant createTime, Instant updateTime,
                       Instant expireTime, String operationId, String change) {

    public Entry entry() {
        return new Entry(key, value, version, createTime, updateTime, expireTime);
    }
}
