package io.kvmesh.core.queue;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.MessageProperties;
import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.Operation;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentNavigableMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Publishes operations to their partition queue and completes each publish only when the broker has confirmed the
 * message that carries it durable. A few long-lived channels ("lanes") in confirm mode are shared by all requests;
 * a key always uses the same lane, so one replica's writes to a key reach the broker in the order they were accepted.
 * <p>
 * Group commit: a lane sends at most {@link PublishBatching#inFlight()} unconfirmed messages; the operations that
 * arrive meanwhile wait, and the next flush sends them as one {@code OperationBatch} message per partition (in
 * arrival order, split at the batch's count and byte bounds). An idle lane sends a write at once, so batching adds
 * no latency at low load, and under load one broker message, one confirm and one delivery carry many writes. With a
 * linger ({@link PublishBatching#lingerMicros()}, off by default) a busy lane also waits that long, once it has room,
 * before it sends: more writes per message when the broker's confirms come back faster than writes accumulate.
 */
public final class OperationPublisher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OperationPublisher.class);
    private static final long RECONNECT_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private final AmqpConnections connections;
    private final QueueTopology topology;
    private final Partitioner partitioner;
    private final AmqpConfig config;
    private final PublishBatching batching;
    private final Lane[] lanes;
    /**
     * The one thread that writes operation messages to the broker: request threads (and the I/O threads that complete
     * their earlier steps) only queue, so none of them blocks on the broker's socket or flow control.
     */
    private final ScheduledExecutorService flusher;
    /** A lane that sent within this long (10 ms, or twice the linger if longer) is busy: it lingers before its next message. */
    private final long busyNanos;
    private final Object connectionLock = new Object();
    private Connection connection;
    private long nextConnectAttempt;
    private volatile boolean closed;
    /**
     * Why the broker blocks this connection's publishing (a resource alarm: low disk or memory), or null. While it
     * does, writes are refused at once instead of each waiting for its confirm timeout.
     */
    private volatile String blockedReason;
    /** Operations per broker message: how much group commit saves (1 at low load). */
    private final DistributionSummary batchOps;
    private final Counter messagesConfirmed;
    private final Counter messagesFailed;

    public OperationPublisher(AmqpConfig config, AmqpConnections connections, PublishBatching batching) {
        this(config, connections, batching, new CompositeMeterRegistry());
    }

    /** With meters: {@code kvmesh.publish.batch.ops} and {@code kvmesh.publish.messages{outcome}}. */
    public OperationPublisher(AmqpConfig config, AmqpConnections connections, PublishBatching batching,
                              MeterRegistry meters) {
        this.batchOps = DistributionSummary.builder("kvmesh.publish.batch.ops")
                .description("operations per broker message (group commit)").register(meters);
        this.messagesConfirmed = Counter.builder("kvmesh.publish.messages").tag("outcome", "confirmed")
                .description("broker messages of operations, by how the broker settled them").register(meters);
        this.messagesFailed = Counter.builder("kvmesh.publish.messages").tag("outcome", "failed")
                .description("broker messages of operations, by how the broker settled them").register(meters);
        this.config = config;
        this.connections = connections;
        this.batching = batching;
        this.topology = new QueueTopology(config);
        this.partitioner = new Partitioner(config.partitions());
        this.busyNanos = Math.max(TimeUnit.MILLISECONDS.toNanos(10), 2_000L * batching.lingerMicros());
        this.flusher = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-publisher").daemon(true).factory());
        this.lanes = new Lane[Math.max(1, batching.lanes())];
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
     * Publishes {@code op} persistent to its partition queue. Completes normally once the broker confirmed the message
     * carrying it; fails with UNAVAILABLE if the broker is unreachable, blocks publishing (a resource alarm), nacks,
     * returns it unroutable or does not confirm in time.
     */
    public CompletableFuture<Void> publish(Operation op) {
        String blocked = blockedReason;
        if (blocked != null) {
            return CompletableFuture.failedFuture(KvException.unavailable("the broker refuses writes for now ("
                    + blocked + "); nothing was written, retry later", null));
        }
        int partition = partitioner.partitionOf(op.getKey());
        CompletableFuture<Void> future = new CompletableFuture<>();
        lanes[partition % lanes.length].add(new Waiting(op, partition, future));
        return future
                .orTimeout(config.confirmTimeout().toMillis(), TimeUnit.MILLISECONDS)
                .exceptionallyCompose(e -> CompletableFuture.failedFuture(e instanceof TimeoutException
                        ? KvException.unavailable("the broker did not confirm the write in time", e)
                        : e));
    }

    /**
     * How long the oldest message the broker has not confirmed yet has waited (zero when none waits): with an open
     * connection, a broker that stopped confirming (a network partition, a stuck node) shows here long before the
     * connection's heartbeat gives up on it.
     */
    public Duration unconfirmedFor() {
        long now = System.nanoTime();
        long oldest = 0;
        for (Lane lane : lanes) {
            Map.Entry<Long, Sent> first = lane.outstanding.firstEntry();
            if (first != null) {
                long age = now - first.getValue().sentNanos();
                if (age > config.confirmTimeout().toNanos()) {
                    // its writes have failed by now; a lane no write comes to any more must not stay stuck
                    lane.abortStalled();
                }
                oldest = Math.max(oldest, age);
            }
        }
        return Duration.ofNanos(oldest);
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
            try (Channel ch = c.createChannel()) {
                topology.declare(ch);
            } catch (IOException | TimeoutException | RuntimeException e) {
                // not used until the topology is right: a refused layout must not let writes through
                try {
                    c.abort();
                } catch (RuntimeException ignored) {
                    // closing a connection that failed anyway
                }
                throw e instanceof IOException io ? io : new IOException(e);
            }
            // RabbitMQ blocks publishing connections while a resource alarm holds (free disk below disk_free_limit,
            // memory above the watermark): connection.blocked, then it stops reading their sockets
            blockedReason = null;
            c.addBlockedListener(reason -> {
                blockedReason = reason;
                log.warn("the broker blocks publishing ({}): writes are refused until it unblocks", reason);
            }, () -> {
                blockedReason = null;
                log.info("the broker unblocked publishing: writes go through again");
            });
            connection = c;
            log.info("connected to the broker");
            return c;
        }
    }

    @Override
    public void close() {
        closed = true;
        flusher.shutdownNow();
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

    /** An accepted operation waiting for its lane's next message. */
    private record Waiting(Operation op, int partition, CompletableFuture<Void> future) {
    }

    /** A published message: its id (for returns) and the writes it carries. */
    private record Sent(String messageId, List<CompletableFuture<Void>> futures, long sentNanos) {
    }

    private static void completeAll(List<CompletableFuture<Void>> futures, Throwable failure) {
        for (CompletableFuture<Void> f : futures) {
            if (failure == null) {
                f.complete(null);
            } else {
                f.completeExceptionally(failure);
            }
        }
    }

    /** One confirm-mode channel, the writes waiting for it, and the messages it has not had confirmed yet. */
    private final class Lane {
        private final int index;
        private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
        private boolean scheduled;
        /** System.nanoTime() of the lane's last message (guarded by the lane). */
        private long lastSentNanos = Long.MIN_VALUE / 2;
        private volatile Channel channel;
        /** The channel last handed to {@link #abortStalled} (read and written by the health check's thread). */
        private Channel abortedChannel;
        private long generation;
        private volatile ConcurrentNavigableMap<Long, Sent> outstanding = new ConcurrentSkipListMap<>();

        Lane(int index) {
            this.index = index;
        }

        /** Queues a write; the publisher's thread sends it (callers never wait on the broker's socket). */
        void add(Waiting w) {
            synchronized (this) {
                waiting.add(w);
            }
            schedule();
        }

        /**
         * On the publisher's thread, once per stalled channel: drops it (its shutdown fails what it carried; the abort
         * may wait for the broker's answer, as the one in {@link #flushIfFree} does); the next write opens a new one.
         */
        void abortStalled() {
            Channel stalled = channel;
            if (stalled == null || !stalled.isOpen() || stalled == abortedChannel) {
                return;
            }
            abortedChannel = stalled;
            try {
                flusher.execute(() -> {
                    log.warn("lane {}: no confirm for {} ms; reopening its channel", index,
                            config.confirmTimeout().toMillis());
                    try {
                        stalled.abort();
                    } catch (IOException | RuntimeException e) {
                        log.debug("abort", e);
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closing
            }
        }

        /** After confirms (on the client library's thread): the lane has room again, so what waited goes out. */
        void confirmed() {
            schedule();
        }

        private void schedule() {
            long linger = batching.lingerMicros();
            synchronized (this) {
                if (scheduled || waiting.isEmpty()) {
                    return;
                }
                scheduled = true;
                if (linger > 0 && System.nanoTime() - lastSentNanos >= busyNanos) {
                    linger = 0; // an idle lane sends at once
                }
            }
            try {
                if (linger > 0) {
                    flusher.schedule(this::flushWaiting, linger, TimeUnit.MICROSECONDS);
                } else {
                    flusher.execute(this::flushWaiting);
                }
            } catch (java.util.concurrent.RejectedExecutionException e) {
                List<CompletableFuture<Void>> failed = new ArrayList<>();
                synchronized (this) {
                    drainFutures(failed);
                }
                completeAll(failed, KvException.unavailable("the publisher is closed", e));
            }
        }

        private void flushWaiting() {
            List<CompletableFuture<Void>> failed = new ArrayList<>();
            KvException failure;
            synchronized (this) {
                scheduled = false;
                failure = flushIfFree(failed);
            }
            completeAll(failed, failure);
        }

        /**
         * Sends what waits if the lane has room; collects the futures of writes that could not be sent (broker
         * unreachable) in {@code failed} and returns their failure, to be completed outside the lock.
         */
        private KvException flushIfFree(List<CompletableFuture<Void>> failed) {
            if (waiting.isEmpty()) {
                return null;
            }
            Channel ch;
            try {
                ch = openChannel();
            } catch (IOException | RuntimeException e) {
                drainFutures(failed);
                return KvException.unavailable("the broker is unavailable", e);
            }
            if (outstanding.size() >= batching.inFlight()) {
                // a broker that stopped confirming must not hold the lane forever: drop the channel (its shutdown
                // fails what it carried) and start over on a new one
                Map.Entry<Long, Sent> oldest = outstanding.firstEntry();
                if (oldest != null && System.nanoTime() - oldest.getValue().sentNanos()
                        > config.confirmTimeout().toNanos()) {
                    log.warn("lane {}: no confirm for {} ms; reopening its channel", index,
                            config.confirmTimeout().toMillis());
                    try {
                        ch.abort();
                    } catch (IOException e) {
                        log.debug("abort", e);
                    }
                }
                return null;
            }
            Map<Integer, List<Operation>> byPartition = new LinkedHashMap<>();
            Map<Integer, List<CompletableFuture<Void>>> futures = new LinkedHashMap<>();
            for (Waiting w; (w = waiting.poll()) != null; ) {
                byPartition.computeIfAbsent(w.partition(), p -> new ArrayList<>()).add(w.op());
                futures.computeIfAbsent(w.partition(), p -> new ArrayList<>()).add(w.future());
            }
            for (Map.Entry<Integer, List<Operation>> e : byPartition.entrySet()) {
                List<Operation> ops = e.getValue();
                List<CompletableFuture<Void>> fs = futures.get(e.getKey());
                int from = 0;
                while (from < ops.size()) {
                    int to = from + 1;
                    int bytes = ops.get(from).getSerializedSize();
                    while (to < ops.size() && to - from < batching.maxOps()
                            && bytes + ops.get(to).getSerializedSize() <= batching.maxBytes()) {
                        bytes += ops.get(to).getSerializedSize();
                        to++;
                    }
                    send(ch, e.getKey(), ops.subList(from, to), fs.subList(from, to), failed);
                    from = to;
                }
            }
            return failed.isEmpty() ? null : KvException.unavailable("the broker is unavailable", null);
        }

        private void send(Channel ch, int partition, List<Operation> ops, List<CompletableFuture<Void>> fs,
                          List<CompletableFuture<Void>> failed) {
            long seq = ch.getNextPublishSeqNo();
            String messageId = "l" + index + "." + generation + "." + seq;
            outstanding.put(seq, new Sent(messageId, List.copyOf(fs), System.nanoTime()));
            AMQP.BasicProperties props = MessageProperties.PERSISTENT_BASIC.builder()
                    .contentType(OperationCodec.BATCH_CONTENT_TYPE)
                    .messageId(messageId)
                    .timestamp(Date.from(Micros.toInstant(ops.getFirst().getAcceptTimeMicros())))
                    .build();
            try {
                ch.basicPublish(topology.opsExchange(), QueueTopology.routingKey(partition), true, props,
                        OperationCodec.encodeBatch(ops));
                lastSentNanos = System.nanoTime();
                batchOps.record(ops.size());
            } catch (IOException | RuntimeException e) {
                outstanding.remove(seq);
                failed.addAll(fs);
            }
        }

        private void drainFutures(List<CompletableFuture<Void>> into) {
            for (Waiting w; (w = waiting.poll()) != null; ) {
                into.add(w.future());
            }
        }

        private Channel openChannel() throws IOException {
            if (channel != null && channel.isOpen()) {
                return channel;
            }
            Channel ch = connection().createChannel();
            ch.confirmSelect();
            ConcurrentNavigableMap<Long, Sent> unconfirmed = new ConcurrentSkipListMap<>();
            ch.addConfirmListener(
                    (seq, multiple) -> settle(unconfirmed, seq, multiple, null),
                    (seq, multiple) -> settle(unconfirmed, seq, multiple,
                            new KvException(KvError.UNAVAILABLE, "the broker refused the write")));
            ch.addReturnListener(ret -> {
                String id = ret.getProperties().getMessageId();
                KvException e = new KvException(KvError.UNAVAILABLE,
                        "the broker could not route the write (" + ret.getReplyText() + ")");
                unconfirmed.values().stream().filter(s -> s.messageId().equals(id)).findFirst()
                        .ifPresent(s -> s.futures().forEach(f -> f.completeExceptionally(e)));
            });
            ch.addShutdownListener(cause -> {
                KvException e = KvException.unavailable("the broker connection was lost before the write was confirmed", cause);
                List<Sent> lost = List.copyOf(unconfirmed.values());
                unconfirmed.clear();
                messagesFailed.increment(lost.size());
                lost.forEach(s -> completeAll(s.futures(), e));
                confirmed();
            });
            channel = ch;
            generation++;
            outstanding = unconfirmed;
            log.debug("lane {} opened channel {}", index, ch.getChannelNumber());
            return ch;
        }

        private void settle(ConcurrentNavigableMap<Long, Sent> unconfirmed, long seq, boolean multiple,
                            KvException failure) {
            Map<Long, Sent> settled = multiple ? unconfirmed.headMap(seq, true) : unconfirmed.subMap(seq, true, seq, true);
            List<Sent> done = List.copyOf(settled.values());
            settled.clear();
            (failure == null ? messagesConfirmed : messagesFailed).increment(done.size());
            done.forEach(s -> completeAll(s.futures(), failure));
            confirmed();
        }
    }
}
