package io.kvmesh.consumer;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.apply.BatchApplier;
import io.kvmesh.consumer.apply.CacheUpdater;
import io.kvmesh.consumer.apply.DeadLetters;
import io.kvmesh.consumer.apply.Delivery;
import io.kvmesh.consumer.apply.EventPublisher;
import io.kvmesh.consumer.apply.ExpirySweeper;
import io.kvmesh.consumer.apply.ApplyWorker;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.queue.Supervisor;
import io.kvmesh.core.store.Database;
import io.kvmesh.core.store.KvStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The kv-consumer process: consumes every partition queue (the broker makes one consumer per queue active, the others
 * standby), hands each queue's deliveries to that partition's worker, and reconnects after a broker outage. A
 * supervisor thread re-opens the connection or a single partition's channel whenever one closes.
 */
public final class KvConsumer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvConsumer.class);

    private final ConsumerConfig config;
    private final Database database;
    private final KvCache cache;
    private final CacheUpdater cacheUpdater;
    private final AmqpConnections connections;
    private final QueueTopology topology;
    private final ApplyWorker[] workers;
    private final int partitions;
    private final List<Thread> threads = new ArrayList<>();
    private final Channel[] channels;
    private final Thread supervisor;
    private volatile boolean running = true;
    private volatile Connection connection;
    private volatile Channel sweeperChannel;
    private final ScheduledExecutorService sweeps;

    private KvConsumer(ConsumerConfig config, AfterCommit afterCommit) {
        this.config = config;
        this.database = Database.open(config.postgres(), config.startupTimeout());
        this.cache = new KvCache(config.redis());
        Clock clock = Clock.systemUTC();
        this.cacheUpdater = new CacheUpdater(cache, clock, config.redis().timeout().multipliedBy(2), config.cacheRetry());
        this.connections = new AmqpConnections(config.amqp());
        this.topology = new QueueTopology(config.amqp());
        KvStore store = new KvStore(database.jdbi());
        BatchApplier applier = new BatchApplier(store);
        EventPublisher events = new EventPublisher(topology);
        this.partitions = config.amqp().partitions();
        this.workers = new ApplyWorker[Math.min(config.applyThreads(), partitions)];
        this.channels = new Channel[partitions];
        DeadLetters deadLetters = new DeadLetters(topology, () -> connection);
        for (int w = 0; w < workers.length; w++) {
            workers[w] = new ApplyWorker("applier-" + w, applier, cacheUpdater, events, deadLetters, afterCommit,
                    clock, config.batchSize(), config.retryBackoffMax());
        }
        ExpirySweeper sweeper = new ExpirySweeper(store, cacheUpdater, events, () -> sweeperChannel, clock,
                config.oplogRetention());
        this.sweeps = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-expiry").daemon(true).factory());
        sweeps.scheduleWithFixedDelay(sweeper, config.expirySweep().toMillis(), config.expirySweep().toMillis(),
                TimeUnit.MILLISECONDS);
        this.supervisor = Thread.ofPlatform().name("kv-consumer-supervisor").daemon(true).unstarted(this::supervise);
    }

    /** The one wiring used by {@code main} and the tests. */
    public static KvConsumer create(ConsumerConfig config, AfterCommit afterCommit) {
        return new KvConsumer(config, afterCommit);
    }

    public KvConsumer start() {
        for (int w = 0; w < workers.length; w++) {
            Thread t = Thread.ofPlatform().name("kv-apply-" + w).daemon(true).start(workers[w]);
            threads.add(t);
        }
        supervisor.start();
        return this;
    }

    /** Whether the consumer is connected and consuming every partition queue (active or standby). */
    public boolean isConsuming() {
        Connection c = connection;
        if (c == null || !c.isOpen()) {
            return false;
        }
        synchronized (channels) {
            for (Channel ch : channels) {
                if (ch == null || !ch.isOpen()) {
                    return false;
                }
            }
        }
        return true;
    }

    /** Whether PostgreSQL answers now; waits at most the pool's connection timeout (2 s). */
    public boolean databaseReachable() {
        try {
            return database.jdbi().withHandle(h -> h.createQuery("SELECT 1").mapTo(Integer.class).one()) == 1;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** Operations applied by this process so far (duplicates excluded). */
    public long appliedCount() {
        long n = 0;
        for (ApplyWorker w : workers) {
            n += w.appliedCount();
        }
        return n;
    }

    /** Operations this process recognised as applied before and skipped. */
    public long duplicateCount() {
        long n = 0;
        for (ApplyWorker w : workers) {
            n += w.duplicateCount();
        }
        return n;
    }

    /** Batches retried because the database was unavailable. */
    public long retryCount() {
        long n = 0;
        for (ApplyWorker w : workers) {
            n += w.retryCount();
        }
        return n;
    }

    /** Keys whose cache update waits for Redis to come back. */
    public int cacheBacklog() {
        return cacheUpdater.backlogSize();
    }

    private void supervise() {
        Supervisor.loop("broker", () -> running, this::connectAndSubscribe, log);
    }

    /** Opens the connection if it is closed, then subscribes every partition whose channel is closed. */
    private void connectAndSubscribe() throws Exception {
        Connection c = connection;
        if (c == null || !c.isOpen()) {
            c = connections.open("kv-consumer");
            try (Channel ch = c.createChannel()) {
                topology.declare(ch);
            }
            connection = c;
            sweeperChannel = c.createChannel();
            log.info("connected to the broker; consuming {} partition queues with {} appliers", partitions,
                    workers.length);
        }
        for (int p = 0; p < partitions; p++) {
            synchronized (channels) {
                if (channels[p] == null || !channels[p].isOpen()) {
                    channels[p] = subscribe(c, p);
                }
            }
        }
    }

    private Channel subscribe(Connection c, int partition) throws IOException {
        Channel ch = c.createChannel();
        ch.basicQos(config.prefetch());
        ApplyWorker worker = workers[partition % workers.length];
        ch.basicConsume(topology.partitionQueue(partition), false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties,
                                       byte[] body) {
                worker.offer(new Delivery(getChannel(), envelope.getDeliveryTag(), properties.getContentType(), body));
            }
        });
        return ch;
    }

    /** Stops consuming (unacknowledged deliveries go back to the broker), then the workers, cache and database. */
    @Override
    public void close() {
        running = false;
        supervisor.interrupt();
        sweeps.shutdownNow();
        Connection c = connection;
        if (c != null && c.isOpen()) {
            try {
                c.close(5_000);
            } catch (IOException | RuntimeException e) {
                log.debug("closing broker connection", e);
            }
        }
        for (ApplyWorker w : workers) {
            w.stop();
        }
        for (Thread t : threads) {
            try {
                t.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        cacheUpdater.close();
        cache.close();
        database.close();
        log.info("kv-consumer stopped");
    }

    /** Simulates a crash for fault-injection tests: drops the broker connection without closing it cleanly. */
    public void abortBrokerConnection() {
        Connection c = connection;
        if (c != null) {
            c.abort();
        }
    }
}
