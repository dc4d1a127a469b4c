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

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;
import java.util.function.IntSupplier;

/**
 * Receives the change events the appliers publish, through a queue of this replica's own (exclusive, deleted when the
 * replica goes), and hands each to a sink: SYNC writes waiting for their operation, and Watch streams. Reconnects by
 * itself; events published while it is disconnected are not seen (SYNC writes then answer "queued" at their deadline).
 * <p>
 * On demand (a non-zero {@code idle}): the queue is bound to the events exchange only while someone here listens.
 * A SYNC write and a Watch call {@link #ready()} first, which binds the queue if it is not bound (one broker round
 * trip); the binding stays while SYNC writes wait or Watch streams are open, and until {@code idle} after the last
 * {@link #ready()}, then the queue is unbound. A replica that only takes ASYNC writes and reads then receives no
 * events at all: the broker does not route every applied batch to it, and it does not decode them (ghz-bench levers,
 * "events always"). With {@code idle} zero the queue is always bound, as before.
 */
public final class EventSubscriber implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EventSubscriber.class);

    private final AmqpConnections connections;
    private final QueueTopology topology;
    private static final CompletableFuture<Void> READY = CompletableFuture.completedFuture(null);

    private final Consumer<ChangeEvent> sink;
    private final Thread supervisor;
    /** Zero: always bound. Else how long after the last {@link #ready()} the binding stays without listeners. */
    private final long idleNanos;
    /** SYNC writes waiting plus Watch streams open: while positive the binding stays. */
    private final IntSupplier listeners;
    /** Binds for {@link #ready()} callers, off their threads (request handlers must not block on the broker). */
    private final ExecutorService binder;
    /** Serialises binding and unbinding. */
    private final Object bindLock = new Object();
    private volatile boolean running = true;
    private volatile Connection connection;
    private volatile Channel channel;
    /** The channel and queue that binding applies to: the newest queue declared, even before it is consumed. */
    private volatile Channel queueChannel;
    private volatile String queue;
    private volatile boolean bound;
    private volatile long lastReady = System.nanoTime();

    /** Always bound (tests, and {@code KVMESH_EVENTS_IDLE_MS=0}). */
    public EventSubscriber(AmqpConnections connections, QueueTopology topology, Consumer<ChangeEvent> sink) {
        this(connections, topology, sink, Duration.ZERO, () -> 0);
    }

    public EventSubscriber(AmqpConnections connections, QueueTopology topology, Consumer<ChangeEvent> sink,
                           Duration idle, IntSupplier listeners) {
        this.connections = connections;
        this.topology = topology;
        this.sink = sink;
        this.idleNanos = idle.toNanos();
        this.listeners = listeners;
        this.supervisor = Thread.ofPlatform().name("kv-events").daemon(true).unstarted(this::supervise);
        this.binder = Executors.newSingleThreadExecutor(Thread.ofPlatform().name("kv-events-bind").daemon(true)
                .factory());
    }

    /**
     * Completes once events published from now on reach this replica: at once when the queue is bound, else after
     * binding it. Never fails: while the broker is unreachable it completes anyway (SYNC writes then answer "queued"
     * at their deadline, as they did when the subscription was lost).
     */
    public CompletableFuture<Void> ready() {
        // written before `bound` is read; unbindIfIdle writes `bound` before it reads this (see there)
        lastReady = System.nanoTime();
        if (bound) {
            return READY;
        }
        return CompletableFuture.runAsync(this::bindNow, binder);
    }

    /** Whether the queue is bound to the events exchange now. */
    public boolean isBound() {
        return bound && isSubscribed();
    }

    private boolean wanted() {
        return idleNanos == 0 || listeners.getAsInt() > 0 || System.nanoTime() - lastReady < idleNanos;
    }

    private void bindNow() {
        synchronized (bindLock) {
            Channel ch = queueChannel;
            if (bound || ch == null || !ch.isOpen()) {
                return;
            }
            try {
                ch.queueBind(queue, topology.eventsExchange(), "");
                bound = true;
                log.debug("events queue bound");
            } catch (Exception e) {
                log.info("could not bind the events queue ({}); retrying on the next SYNC write or Watch",
                        e.toString());
            }
        }
    }

    /**
     * Unbinds when nobody listened for {@code idle}. {@code bound} turns false before {@code wanted()} is read again,
     * and {@link #ready()} writes {@code lastReady} before it reads {@code bound}: so either a concurrent ready() sees
     * false and binds again (after this, under the lock), or this sees its fresh {@code lastReady} and keeps the
     * binding. A caller that saw {@code bound} true is never left unbound before its operation is published.
     */
    private void unbindIfIdle() throws Exception {
        if (idleNanos == 0 || !bound || wanted()) {
            return;
        }
        synchronized (bindLock) {
            bound = false;
            if (wanted()) {
                bound = true;
                return;
            }
            Channel ch = queueChannel;
            if (ch != null && ch.isOpen()) {
                ch.queueUnbind(queue, topology.eventsExchange(), "");
                log.debug("events queue unbound: no SYNC write or Watch for {} ms", idleNanos / 1_000_000);
            }
        }
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
            } else {
                unbindIfIdle();
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
        String name = ch.queueDeclare("", false, true, true, null).getQueue();
        synchronized (bindLock) {
            bound = false;
            queue = name;
            queueChannel = ch;
            if (wanted()) {
                ch.queueBind(name, topology.eventsExchange(), "");
                bound = true;
            }
        }
        ch.basicConsume(name, true, new DefaultConsumer(ch) {
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
        log.info("subscribed to change events{}", bound ? "" : " (the queue is bound at the next SYNC write or Watch)");
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
        binder.shutdownNow();
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
