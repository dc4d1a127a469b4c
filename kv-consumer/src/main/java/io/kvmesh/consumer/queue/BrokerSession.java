package io.kvmesh.consumer.queue;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import io.kvmesh.consumer.apply.Delivery;
import io.kvmesh.consumer.apply.EventPublisher;
import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.queue.Supervisor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.function.IntFunction;

/**
 * kv-consumer's link to the broker: one connection, one channel per partition queue (the broker makes one consumer
 * per queue active, the others standby), a channel for the sweeper's events, and the reconnect loop that re-opens
 * the connection or a single partition's channel whenever one closes. Each partition's deliveries go to the handler
 * for that partition, in queue order. Every few seconds it also reads each queue's backlog for the metrics.
 */
public final class BrokerSession implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BrokerSession.class);
    private static final Duration BACKLOG_POLL = Duration.ofSeconds(2);

    /** Receives one partition's deliveries, in queue order, on the channel's dispatch thread. */
    @FunctionalInterface
    public interface DeliveryHandler {
        void offer(Delivery delivery);
    }

    private final AmqpConnections connections;
    private final QueueTopology topology;
    private final int prefetch;
    private final IntFunction<DeliveryHandler> handlerOf;
    private final EventPublisher events;
    private final ConsumerMetrics metrics;
    private final int partitions;
    private final Channel[] channels;
    private final Thread supervisor;
    private volatile boolean running = true;
    private volatile Connection connection;
    private volatile Channel eventsChannel;
    private Channel statsChannel;
    private long nextBacklogPoll;

    public BrokerSession(AmqpConnections connections, QueueTopology topology, int prefetch,
                         IntFunction<DeliveryHandler> handlerOf, EventPublisher events, ConsumerMetrics metrics) {
        this.connections = connections;
        this.topology = topology;
        this.prefetch = prefetch;
        this.handlerOf = handlerOf;
        this.events = events;
        this.metrics = metrics;
        this.partitions = topology.partitions();
        this.channels = new Channel[partitions];
        this.supervisor = Thread.ofPlatform().name("kv-consumer-supervisor").daemon(true).unstarted(
                () -> Supervisor.loop("broker", () -> running, this::connectAndSubscribe, log));
    }

    /** Starts the reconnect loop: it connects, declares the topology and subscribes every partition. */
    public void start() {
        supervisor.start();
    }

    /** The connection, or null while there is none (for the dead-letter channel). */
    public Connection connection() {
        return connection;
    }

    /** A channel of the current connection for events that belong to no partition (the expiry sweep's). */
    public Channel eventsChannel() {
        return eventsChannel;
    }

    /** Whether the connection is open and every partition queue is consumed (active or standby). */
    public boolean isConsuming() {
        return subscribedPartitions() == partitions;
    }

    /** How many partition channels are open now. */
    public int subscribedPartitions() {
        Connection c = connection;
        if (c == null || !c.isOpen()) {
            return 0;
        }
        int open = 0;
        synchronized (channels) {
            for (Channel ch : channels) {
                if (ch != null && ch.isOpen()) {
                    open++;
                }
            }
        }
        return open;
    }

    /** Opens the connection if it is closed, then subscribes every partition whose channel is closed. */
    private void connectAndSubscribe() throws Exception {
        Connection c = connection;
        if (c == null || !c.isOpen()) {
            c = connections.open("kv-consumer");
            try (Channel ch = c.createChannel()) {
                topology.declare(ch);
            } catch (Exception e) {
                c.abort(); // a refused layout (stranded operations) is retried on a new connection, not leaked
                throw e;
            }
            connection = c;
            eventsChannel = c.createChannel();
            statsChannel = null;
            log.info("connected to the broker; consuming {} partition queues", partitions);
        }
        for (int p = 0; p < partitions; p++) {
            synchronized (channels) {
                if (channels[p] == null || !channels[p].isOpen()) {
                    channels[p] = subscribe(c, p);
                    requestPermit(p);
                }
            }
        }
        pollBacklog(c);
    }

    private Channel subscribe(Connection c, int partition) throws IOException {
        Channel ch = c.createChannel();
        ch.basicQos(prefetch);
        AmqpPartitionChannel partitionChannel = new AmqpPartitionChannel(ch, partition, events);
        DeliveryHandler handler = handlerOf.apply(partition);
        ch.basicConsume(topology.partitionQueue(partition), false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties,
                                       byte[] body) {
                metrics.delivered(envelope.isRedeliver());
                handler.offer(new Delivery(partitionChannel, envelope.getDeliveryTag(), envelope.isRedeliver(),
                        properties.getContentType(), body));
            }
        });
        return ch;
    }

    /**
     * Sends an empty cache permit request into the partition's queue ({@link OperationCodec#PERMIT_REQUEST_CONTENT_TYPE}):
     * the consumer the broker makes active for it, this one or another, learns so without waiting for a write. Best
     * effort: a lost request only leaves the partition's reads to PostgreSQL until its next write.
     */
    private void requestPermit(int partition) {
        Channel ch = eventsChannel;
        if (ch == null || !ch.isOpen()) {
            return;
        }
        try {
            ch.basicPublish(topology.opsExchange(), QueueTopology.routingKey(partition),
                    new AMQP.BasicProperties.Builder().contentType(OperationCodec.PERMIT_REQUEST_CONTENT_TYPE).build(),
                    new byte[0]);
        } catch (IOException | RuntimeException e) {
            log.debug("could not send a cache permit request to partition {}: {}", partition, e.toString());
        }
    }

    /** Reads the ready-message count of every partition queue, at most every {@link #BACKLOG_POLL}. */
    private void pollBacklog(Connection c) {
        long now = System.nanoTime();
        if (now - nextBacklogPoll < 0) {
            return;
        }
        nextBacklogPoll = now + BACKLOG_POLL.toNanos();
        try {
            if (statsChannel == null || !statsChannel.isOpen()) {
                statsChannel = c.createChannel();
            }
            for (int p = 0; p < partitions; p++) {
                metrics.backlog(p, statsChannel.queueDeclarePassive(topology.partitionQueue(p)).getMessageCount());
            }
        } catch (IOException | RuntimeException e) {
            // only the metric suffers; the channel is re-opened on the next poll
            log.debug("could not read the queue backlog: {}", e.toString());
            for (int p = 0; p < partitions; p++) {
                metrics.backlog(p, -1);
            }
        }
    }

    /** Stops the reconnect loop and closes the connection: unacknowledged deliveries go back to the broker. */
    @Override
    public void close() {
        running = false;
        supervisor.interrupt();
        try {
            supervisor.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Connection c = connection;
        if (c != null && c.isOpen()) {
            try {
                c.close(5_000);
            } catch (IOException | RuntimeException e) {
                log.debug("closing broker connection", e);
            }
        }
    }

    /** Simulates a crash for fault-injection tests: drops the connection without closing it cleanly. */
    public void abort() {
        Connection c = connection;
        if (c != null) {
            c.abort();
        }
    }
}
