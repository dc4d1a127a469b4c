package io.kvmesh.consumer.apply;

import io.kvmesh.queue.v1.Operation;

import java.io.IOException;

/** Where one operation that can never apply goes on its own ({@link DeadLetters}; a fake in unit tests). */
@FunctionalInterface
public interface DeadLetterSink {

    /** Returns once the operation is durably dead-lettered; throws if that is not certain. */
    void publish(Operation op, String reason) throws IOException;
}
