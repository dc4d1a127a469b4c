package io.kvmesh.consumer;

import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.apply.ApplyWorker;
import io.kvmesh.consumer.apply.BatchApplier;
import io.kvmesh.consumer.apply.CacheUpdater;
import io.kvmesh.consumer.apply.DeadLetters;
import io.kvmesh.consumer.apply.EventPublisher;
import io.kvmesh.consumer.apply.ExpirySweeper;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.consumer.http.ConsumerHealth;
import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.consumer.metrics.ConsumerMetrics.Result;
import io.kvmesh.consumer.queue.BrokerSession;
import io.kvmesh.core.admin.AdminHttpServer;
import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.metrics.Metrics;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.store.Database;
import io.kvmesh.core.store.KvStore;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The kv-consumer process: consumes every partition queue ({@link BrokerSession}), applies each partition's
 * deliveries on the applier thread of its group ({@link ApplyWorker}), sweeps expired entries, and serves {@code GET
 * /healthz} and {@code GET /metrics} on its admin port. {@link #create} is the one wiring used by {@code main} and
 * the tests; it opens the stores but starts nothing; {@link #start} starts the threads; {@link #stop} stops
 * consuming first (unacknowledged deliveries go back to the broker) and closes the rest in reverse order of creation.
 */
public final class KvConsumer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvConsumer.class);

    private final ConsumerConfig config;
    private final ConsumerMetrics metrics;
    private final ConsumerHealth health;
    private final AdminHttpServer http;
    private final Database database;
    private final KvCache cache;
    private final CacheUpdater cacheUpdater;
    private final ApplyWorker[] workers;
    private final BrokerSession session;
    private final ExpirySweeper sweeper;
    private final ScheduledExecutorService sweeps;
    private final List<Thread> threads = new ArrayList<>();
    private final AtomicBoolean started = new AtomicBoolean();
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final CountDownLatch terminated = new CountDownLatch(1);

    private KvConsumer(ConsumerConfig config, ConsumerMetrics metrics, ConsumerHealth health, AdminHttpServer http,
                       Database database, KvCache cache, CacheUpdater cacheUpdater, ApplyWorker[] workers,
                       BrokerSession session, ExpirySweeper sweeper, ScheduledExecutorService sweeps) {
        this.config = config;
        this.metrics = metrics;
        this.health = health;
        this.http = http;
        this.database = database;
        this.cache = cache;
        this.cacheUpdater = cacheUpdater;
        this.workers = workers;
        this.session = session;
        this.sweeper = sweeper;
        this.sweeps = sweeps;
    }

    /**
     * Wires the consumer: binds the admin endpoint first (a port in use fails at once; it answers 503 "starting"
     * meanwhile), then opens PostgreSQL (waiting up to the start-up timeout, migrating the schema) and Redis.
     */
    public static KvConsumer create(ConsumerConfig config, AfterCommit afterCommit) {
        PrometheusMeterRegistry registry = Metrics.newRegistry("kv-consumer", config.instance());
        QueueTopology topology = new QueueTopology(config.amqp());
        int partitions = topology.partitions();
        ConsumerMetrics metrics = new ConsumerMetrics(registry, partitions);
        ConsumerHealth health = new ConsumerHealth();
        AdminHttpServer http;
        try {
            http = AdminHttpServer.start(config.httpBind(), config.httpPort(), health, registry::scrape);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot serve the admin endpoint on " + config.httpBind() + ":"
                    + config.httpPort(), e);
        }
        Database database;
        KvCache cache;
        try {
            database = Database.open(config.postgres(), config.startupTimeout());
            try {
                cache = new KvCache(config.redis(), new Partitioner(partitions));
            } catch (RuntimeException e) {
                database.close();
                throw e;
            }
        } catch (RuntimeException e) {
            http.close();
            throw e;
        }
        Clock clock = Clock.systemUTC();
        KvStore store = new KvStore(database.jdbi());
        CacheUpdater cacheUpdater = new CacheUpdater(cache, new Partitioner(partitions), clock,
                config.redis().timeout().multipliedBy(2), config.cachePermit());
        EventPublisher events = new EventPublisher(topology);
        BatchApplier applier = new BatchApplier(store);
        ApplyWorker[] workers = new ApplyWorker[Math.min(config.applyThreads(), partitions)];
        // partition p is applied by thread p mod threads, which batches all its partitions into one transaction
        // (the handler is looked up at subscription, after start, when every worker exists)
        BrokerSession session = new BrokerSession(new AmqpConnections(config.amqp()), topology, config.prefetch(),
                p -> workers[p % workers.length]::offer, events, metrics);
        DeadLetters deadLetters = new DeadLetters(topology, session::connection);
        for (int w = 0; w < workers.length; w++) {
            workers[w] = new ApplyWorker("applier-" + w, applier, cacheUpdater, deadLetters, afterCommit, clock,
                    config.batchSize(), config.retryBackoff(), metrics);
            ApplyWorker worker = workers[w];
            metrics.gauge("inbox.deliveries", "Deliveries received and waiting for this applier thread",
                    worker::waiting, "applier", worker.name());
        }
        ExpirySweeper sweeper = new ExpirySweeper(store, cacheUpdater, events, session::eventsChannel, clock,
                config.oplogRetention(), metrics);
        ScheduledExecutorService sweeps = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-expiry").daemon(true).factory());
        metrics.gauge("cache.permits", "Partitions whose cache permit this consumer holds (their cache is read)",
                cacheUpdater::permitsHeld);
        metrics.gauge("cache.tainted", "Partitions whose cache update failed: not read from the cache until a new "
                + "permit epoch", cacheUpdater::partitionsTainted);
        metrics.gauge("partitions.subscribed", "Partition queues this consumer is subscribed to (active or standby)",
                session::subscribedPartitions);
        return new KvConsumer(config, metrics, health, http, database, cache, cacheUpdater, workers, session, sweeper,
                sweeps);
    }

    /** Starts the appliers, the cache retries, the broker session and the expiry sweep; health turns to the checks. */
    public KvConsumer start() {
        if (!started.compareAndSet(false, true)) {
            throw new IllegalStateException("already started");
        }
        cacheUpdater.start();
        for (int w = 0; w < workers.length; w++) {
            threads.add(Thread.ofPlatform().name("kv-apply-" + w).daemon(true).start(workers[w]));
        }
        session.start();
        long sweepMillis = config.expirySweep().toMillis();
        sweeps.scheduleWithFixedDelay(sweeper, sweepMillis, sweepMillis, TimeUnit.MILLISECONDS);
        health.started(session::isConsuming, this::databaseReachable);
        log.info("kv-consumer started: {} partition queues, {} appliers; admin endpoint on http://{}:{}/healthz",
                config.amqp().partitions(), workers.length, adminAddress().getHostString(), adminAddress().getPort());
        return this;
    }

    /**
     * Stops consuming (the connection closes, so unacknowledged deliveries go back to the broker), then the
     * appliers, the sweep, the cache, the database and last the admin endpoint. Idempotent.
     */
    public void stop() {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        health.stopping();
        session.close();
        sweeps.shutdownNow();
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
        try {
            sweeps.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        cacheUpdater.close();
        cache.close();
        database.close();
        http.close();
        log.info("kv-consumer stopped");
        terminated.countDown();
    }

    /** Same as {@link #stop}. */
    @Override
    public void close() {
        stop();
    }

    /** Blocks until {@link #stop} has finished. */
    public void blockUntilShutdown() throws InterruptedException {
        terminated.await();
    }

    /** The admin endpoint's address ({@code /healthz}, {@code /metrics}); the real port when 0 was asked for. */
    public InetSocketAddress adminAddress() {
        return http.address();
    }

    /** The consumer's meters. */
    public ConsumerMetrics metrics() {
        return metrics;
    }

    /** Whether the consumer is connected and consuming every partition queue (active or standby). */
    public boolean isConsuming() {
        return session.isConsuming();
    }

    /** Whether PostgreSQL answers now; waits at most the pool's connection timeout (2 s). */
    public boolean databaseReachable() {
        try {
            return database.jdbi().withHandle(h -> h.createQuery("SELECT 1").mapTo(Integer.class).one()) == 1;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** Operations applied or rejected by this process so far (duplicates excluded). */
    public long appliedCount() {
        return metrics.count(Result.APPLIED) + metrics.count(Result.REJECTED);
    }

    /** Operations this process recognised as applied before and skipped. */
    public long duplicateCount() {
        return metrics.count(Result.DUPLICATE);
    }

    /** Batch applies retried because the database was unavailable. */
    public long retryCount() {
        return metrics.retries();
    }

    /** Partitions whose cache permit this consumer holds. */
    public int cachePermits() {
        return cacheUpdater.permitsHeld();
    }

    /** Simulates a crash for fault-injection tests: drops the broker connection without closing it cleanly. */
    public void abortBrokerConnection() {
        session.abort();
    }
}
