package io.kvmesh.consumer.apply;

import io.kvmesh.queue.v1.ChangeEvent;

import java.io.IOException;
import java.util.List;

/**
 * The broker channel one partition queue is consumed on, as the appliers use it: acknowledgements, dead-lettering,
 * giving everything back, and the change events of the batches that arrived on it. Its deliveries' tags belong to
 * it, so a delivery is always acknowledged on the channel it came from.
 */
public interface PartitionChannel {

    /** The partition (queue number) this channel consumes. */
    int partition();

    /** Whether acknowledgements can still be sent; when it closed, the broker redelivers what was not acknowledged. */
    boolean isOpen();

    /** Acknowledges every delivery up to and including {@code tag}. */
    void ackUpTo(long tag) throws IOException;

    /** Rejects one delivery without requeue: the queue dead-letters it. */
    void reject(long tag) throws IOException;

    /** Closes the channel at once, so the broker redelivers every unacknowledged delivery (to this or a standby). */
    void abort();

    /** Publishes the change events of a committed batch; false when they could not be sent (best effort). */
    boolean publishEvents(List<ChangeEvent> events);
}
