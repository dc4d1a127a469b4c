package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;

import java.util.Collection;

/** Where committed states go after the transaction: the Redis cache ({@link CacheUpdater}; a fake in unit tests). */
public interface CacheSink {

    /** Writes the keys' new states; never throws (what cannot be written now is retried later). */
    void update(Collection<Entry> states);
}
