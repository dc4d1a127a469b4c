package io.kvmesh.consumer.apply;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.EventBatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;

/**
 * Publishes a committed batch's change events, as one message, to the events exchange. Events are notifications
 * (SYNC completion, Watch), not the record: the record is PostgreSQL. They are sent on the channel the batch arrived
 * on; if it is gone the batch is redelivered and its events replayed from the operation log.
 */
public final class EventPublisher {
    private static final Logger log = LoggerFactory.getLogger(EventPublisher.class);
    private static final AMQP.BasicProperties PROPS = new AMQP.BasicProperties.Builder()
            .contentType("application/x-protobuf; proto=kvmesh.queue.v1.EventBatch").deliveryMode(1).build();

    private final QueueTopology topology;

    public EventPublisher(QueueTopology topology) {
        this.topology = topology;
    }

    /** Publishes the events as one message on {@code channel}; false when that failed (logged). */
    public boolean publish(Channel channel, List<ChangeEvent> events) {
        if (events.isEmpty()) {
            return true;
        }
        byte[] body = EventBatch.newBuilder().addAllEvents(events).build().toByteArray();
        try {
            synchronized (channel) {
                channel.basicPublish(topology.eventsExchange(), "", PROPS, body);
            }
            return true;
        } catch (IOException | RuntimeException e) {
            log.info("could not publish {} change events ({}); SYNC callers fall back to their deadline",
                    events.size(), e.getMessage());
            return false;
        }
    }
}
