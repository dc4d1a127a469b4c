package io.kvmesh.consumer.apply;

import io.kvmesh.queue.v1.Operation;

import java.time.Instant;
import java.util.List;

/**
 * Applies operations in one transaction ({@link BatchApplier} against PostgreSQL; a fake in unit tests). A failure
 * rolls everything back and is thrown; {@link io.kvmesh.core.store.KvStore#isTransient} tells whether to retry.
 */
@FunctionalInterface
public interface Applier {
    ApplyResult apply(List<Operation> ops, Instant now);
}
