package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;

import java.util.Collection;

/** Where committed states go after the transaction: the Redis cache ({@link CacheUpdater}; a fake in unit tests). */
public interface CacheSink {

    /**
     * The partition's deliveries arrive on {@code channel}, and this consumer applies them: it holds the partition's
     * cache permit while the channel stays open.
     */
    default void applying(PartitionChannel channel) {
    }

    /**
     * Writes the keys' new states and returns once no reader can be served an older state of those keys from the
     * cache: at once when Redis took them; when it did not, once the permits of their partitions have lapsed or
     * been granted again under a new epoch (at most the permit's lifetime). Only then may the writes be
     * acknowledged. Never fails otherwise.
     */
    void update(Collection<Entry> states) throws InterruptedException;
}
