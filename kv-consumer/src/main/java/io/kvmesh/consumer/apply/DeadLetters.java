package io.kvmesh.consumer.apply;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.MessageProperties;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.queue.v1.Operation;

import java.io.IOException;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * Dead-letters single operations out of a batch message: the one operation that can never apply goes to the dead
 * letter queue on its own (confirmed by the broker before the batch is acknowledged), and the rest of its batch
 * applies. A whole message that cannot be read is rejected instead, and the queue's dead-lettering moves it.
 */
public final class DeadLetters implements DeadLetterSink {
    private static final long CONFIRM_TIMEOUT_MILLIS = 5_000;

    private final QueueTopology topology;
    private final Supplier<Connection> connection;
    private Channel channel;

    public DeadLetters(QueueTopology topology, Supplier<Connection> connection) {
        this.topology = topology;
        this.connection = connection;
    }

    /** Publishes {@code op} to the dead-letter exchange and waits for the broker's confirm. */
    @Override
    public synchronized void publish(Operation op, String reason) throws IOException {
        try {
            Channel ch = channel();
            AMQP.BasicProperties props = MessageProperties.PERSISTENT_BASIC.builder()
                    .contentType(OperationCodec.CONTENT_TYPE)
                    .messageId(op.getId())
                    .headers(Map.of("x-kvmesh-reason", reason.length() > 500 ? reason.substring(0, 500) : reason))
                    .build();
            ch.basicPublish(topology.deadLetterExchange(), "", props, OperationCodec.encode(op));
            ch.waitForConfirmsOrDie(CONFIRM_TIMEOUT_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while dead-lettering", e);
        } catch (TimeoutException e) {
            throw new IOException("the broker did not confirm a dead letter", e);
        }
    }

    private Channel channel() throws IOException {
        if (channel == null || !channel.isOpen()) {
            Connection c = connection.get();
            if (c == null || !c.isOpen()) {
                throw new IOException("not connected to the broker");
            }
            channel = c.createChannel();
            channel.confirmSelect();
        }
        return channel;
    }
}
