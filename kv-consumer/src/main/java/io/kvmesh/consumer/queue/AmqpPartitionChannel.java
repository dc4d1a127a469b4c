package io.kvmesh.consumer.queue;

import com.rabbitmq.client.Channel;
import io.kvmesh.consumer.apply.EventPublisher;
import io.kvmesh.consumer.apply.PartitionChannel;
import io.kvmesh.queue.v1.ChangeEvent;

import java.io.IOException;
import java.util.List;

/** A partition queue's AMQP channel as the appliers use it. */
final class AmqpPartitionChannel implements PartitionChannel {
    private final Channel channel;
    private final int partition;
    private final EventPublisher events;

    AmqpPartitionChannel(Channel channel, int partition, EventPublisher events) {
        this.channel = channel;
        this.partition = partition;
        this.events = events;
    }

    @Override
    public int partition() {
        return partition;
    }

    @Override
    public boolean isOpen() {
        return channel.isOpen();
    }

    @Override
    public void ackUpTo(long tag) throws IOException {
        channel.basicAck(tag, true);
    }

    @Override
    public void reject(long tag) throws IOException {
        channel.basicReject(tag, false);
    }

    @Override
    public void abort() {
        try {
            channel.abort();
        } catch (IOException e) {
            // closing anyway: nothing to do
        }
    }

    @Override
    public boolean publishEvents(List<ChangeEvent> batch) {
        // on the channel the batch arrived on: if it is gone, the batch is redelivered and its events replayed
        return events.publish(channel, batch);
    }
}
