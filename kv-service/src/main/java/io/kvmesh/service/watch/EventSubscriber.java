package io.kvmesh.service.watch;

import com.google.protobuf.InvalidProtocolBufferException;
import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.queue.Supervisor;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.EventBatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.function.Consumer;

/**
 * Receives the change events the appliers publish, through a queue of this replica's own (exclusive, deleted when the
 * replica goes), and hands each to a sink: SYNC writes waiting for their operation, and Watch streams. Reconnects by
 * itself; events published while it is disconnected are not seen (SYNC writes then answer "queued" at their deadline).
 */
public final class EventSubscriber implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EventSubscriber.class);

    private final AmqpConnections connections;
    private final QueueTopology topology;
    private final Consumer<ChangeEvent> sink;
    private final Thread supervisor;
    private volatile boolean running = true;
    private volatile Connection connection;
    private volatile Channel channel;

    public EventSubscriber(AmqpConnections connections, QueueTopology topology, Consumer<ChangeEvent> sink) {
        this.connections = connections;
        this.topology = topology;
        this.sink = sink;
        this.supervisor = Thread.ofPlatform().name("kv-events").daemon(true).unstarted(this::supervise);
    }

    public EventSubscriber start() {
        supervisor.start();
        return this;
    }

    public boolean isSubscribed() {
        Channel ch = channel;
        return ch != null && ch.isOpen();
    }

    private void supervise() {
        Supervisor.loop("change events", () -> running, () -> {
            if (!isSubscribed()) {
                subscribe();
            }
        }, log);
    }

    private void subscribe() throws Exception {
        Connection c = connection;
        if (c == null || !c.isOpen()) {
            c = connections.open("kv-service events");
            connection = c;
        }
        Channel ch = c.createChannel();
        topology.declare(ch);
        String queue = ch.queueDeclare("", false, true, true, null).getQueue();
        ch.queueBind(queue, topology.eventsExchange(), "");
        ch.basicConsume(queue, true, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String tag, Envelope envelope, AMQP.BasicProperties props, byte[] body) {
                try {
                    for (ChangeEvent e : EventBatch.parseFrom(body).getEventsList()) {
                        sink.accept(e);
                    }
                } catch (InvalidProtocolBufferException e) {
                    log.warn("ignoring an undecodable event batch: {}", e.getMessage());
                } catch (RuntimeException e) {
                    // one bad event must not end the subscription (the client library would close the channel)
                    log.error("event handling failed", e);
                }
            }
        });
        channel = ch;
        log.info("subscribed to change events");
    }

    /** Drops the connection without closing it cleanly, as a crash or a network failure would (tests). */
    public void abortConnection() {
        Connection c = connection;
        if (c != null) {
            c.abort();
        }
    }

    @Override
    public void close() {
        running = false;
        supervisor.interrupt();
        Connection c = connection;
        if (c != null && c.isOpen()) {
            try {
                c.close(2_000);
            } catch (Exception e) {
                log.debug("closing events connection", e);
            }
        }
    }
}
