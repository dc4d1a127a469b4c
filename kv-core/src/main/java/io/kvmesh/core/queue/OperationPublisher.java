package io.kvmesh.core.queue;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.MessageProperties;
import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.queue.v1.Operation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.Date;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentNavigableMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Publishes operations to their partition queue and completes each publish only when the broker has confirmed the
 * message durable. A few long-lived channels ("lanes") in confirm mode are shared by all requests; a key always uses
 * the same lane, so one replica's writes to a key reach the broker in the order they were accepted. Confirms are
 * asynchronous and arrive in batches, so many requests share one confirm round trip.
 */
public final class OperationPublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OperationPublisher.class);
    private static final long RECONNECT_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private final AmqpConnections connections;
    private final QueueTopology topology;
    private final Partitioner partitioner;
    private final AmqpConfig config;
    private final Lane[] lanes;
    private final Object connectionLock = new Object();
    private Connection connection;
    private long nextConnectAttempt;
    private volatile boolean closed;

    public OperationPublisher(AmqpConfig config, AmqpConnections connections, int laneCount) {
        this.config = config;
        this.connections = connections;
        this.topology = new QueueTopology(config);
        this.partitioner = new Partitioner(config.partitions());
        this.lanes = new Lane[Math.max(1, laneCount)];
        for (int i = 0; i < lanes.length; i++) {
            lanes[i] = new Lane(i);
        }
    }

    /** Connects and declares the topology now, so a misconfigured broker is reported at start-up. */
    public void connect() throws IOException {
        Connection c = connection();
        try (Channel ch = c.createChannel()) {
            topology.declare(ch);
        } catch (TimeoutException e) {
            throw new IOException(e);
        }
    }

    /**
     * Publishes {@code op} persistent to its partition queue. Completes normally once the broker confirmed it; fails
     * with UNAVAILABLE if the broker is unreachable, nacks, returns it unroutable or does not confirm in time.
     */
    public CompletableFuture<Void> publish(Operation op) {
        int partition = partitioner.partitionOf(op.getKey());
        Lane lane = lanes[partition % lanes.length];
        return lane.publish(op, partition)
                .orTimeout(config.confirmTimeout().toMillis(), TimeUnit.MILLISECONDS)
                .exceptionallyCompose(e -> CompletableFuture.failedFuture(e instanceof TimeoutException
                        ? KvException.unavailable("the broker did not confirm the write in time", e)
                        : e));
    }

    /**
     * Whether the publisher has an open broker connection, connecting first if it has none (at most every 500 ms):
     * health checks call this, so a replica reconnects before its next write needs the broker.
     */
    public boolean ensureConnected() {
        try {
            connection();
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private Connection connection() throws IOException {
        synchronized (connectionLock) {
            if (closed) {
                throw new IOException("publisher is closed");
            }
            if (connection != null && connection.isOpen()) {
                return connection;
            }
            long now = System.nanoTime();
            if (connection != null && now < nextConnectAttempt) {
                throw new IOException("broker unreachable (retrying shortly)");
            }
            nextConnectAttempt = now + RECONNECT_BACKOFF_NANOS;
            Connection c = connections.open("kv-service publisher");
            connection = c;
            try (Channel ch = c.createChannel()) {
                topology.declare(ch);
            } catch (TimeoutException e) {
                throw new IOException(e);
            }
            log.info("connected to the broker");
            return c;
        }
    }

    @Override
    public void close() {
        closed = true;
        synchronized (connectionLock) {
            if (connection != null && connection.isOpen()) {
                try {
                    connection.close(5_000);
                } catch (IOException | RuntimeException e) {
                    log.debug("closing broker connection", e);
                }
            }
        }
    }

    private record Pending(String operationId, CompletableFuture<Void> future) {
    }

    /** One confirm-mode channel and the publishes it has not had confirmed yet. */
    private final class Lane {
        private final int index;
        private Channel channel;
        private ConcurrentNavigableMap<Long, Pending> pending;

        Lane(int index) {
            this.index = index;
        }

        synchronized CompletableFuture<Void> publish(Operation op, int partition) {
            CompletableFuture<Void> future = new CompletableFuture<>();
            try {
                Channel ch = openChannel();
                long seq = ch.getNextPublishSeqNo();
                pending.put(seq, new Pending(op.getId(), future));
                AMQP.BasicProperties props = MessageProperties.PERSISTENT_BASIC.builder()
                        .contentType(OperationCodec.CONTENT_TYPE)
                        .messageId(op.getId())
                        .timestamp(new Date(op.getAcceptTimeMicros() / 1000))
                        .build();
                ch.basicPublish(topology.opsExchange(), QueueTopology.routingKey(partition), true, props,
                        OperationCodec.encode(op));
            } catch (IOException | RuntimeException e) {
                future.completeExceptionally(KvException.unavailable("the broker is unavailable", e));
                if (pending != null) {
                    pending.values().removeIf(p -> p.future() == future);
                }
            }
            return future;
        }

        private Channel openChannel() throws IOException {
            if (channel != null && channel.isOpen()) {
                return channel;
            }
            Channel ch = connection().createChannel();
            ch.confirmSelect();
            ConcurrentNavigableMap<Long, Pending> outstanding = new ConcurrentSkipListMap<>();
            ch.addConfirmListener(
                    (seq, multiple) -> settle(outstanding, seq, multiple, null),
                    (seq, multiple) -> settle(outstanding, seq, multiple,
                            new KvException(KvError.UNAVAILABLE, "the broker refused the write")));
            ch.addReturnListener(ret -> {
                String id = ret.getProperties().getMessageId();
                outstanding.values().stream().filter(p -> p.operationId().equals(id)).findFirst()
                        .ifPresent(p -> p.future().completeExceptionally(new KvException(KvError.UNAVAILABLE,
                                "the broker could not route the write (" + ret.getReplyText() + ")")));
            });
            ch.addShutdownListener(cause -> {
                KvException e = KvException.unavailable("the broker connection was lost before the write was confirmed", cause);
                outstanding.values().forEach(p -> p.future().completeExceptionally(e));
                outstanding.clear();
            });
            channel = ch;
            pending = outstanding;
            log.debug("lane {} opened channel {}", index, ch.getChannelNumber());
            return ch;
        }

        private static void settle(ConcurrentNavigableMap<Long, Pending> outstanding, long seq, boolean multiple,
                                   KvException failure) {
            Map<Long, Pending> settled = multiple ? outstanding.headMap(seq, true) : single(outstanding, seq);
            for (Pending p : settled.values()) {
                if (failure == null) {
                    p.future().complete(null);
                } else {
                    p.future().completeExceptionally(failure);
                }
            }
            settled.clear();
        }

        private static Map<Long, Pending> single(ConcurrentNavigableMap<Long, Pending> outstanding, long seq) {
            return outstanding.subMap(seq, true, seq, true);
        }
    }
}
