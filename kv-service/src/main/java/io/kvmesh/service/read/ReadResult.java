package io.kvmesh.service.read;

import io.kvmesh.core.model.Entry;

/** A live entry and where it was read from: {@code "redis"} or {@code "postgres"}. */
public record ReadResult(Entry entry, String source) {
    public static final String REDIS = "redis";
    public static final String POSTGRES = "postgres";
}
