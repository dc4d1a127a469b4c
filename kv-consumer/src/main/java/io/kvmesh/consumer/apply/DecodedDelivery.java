package io.kvmesh.consumer.apply;

import io.kvmesh.queue.v1.Operation;

import java.util.List;

/** A delivery and the operations it carries, in queue order. */
public record DecodedDelivery(Delivery delivery, List<Operation> ops) {

    public PartitionChannel channel() {
        return delivery.channel();
    }
}
