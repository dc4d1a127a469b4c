package io.kvmesh.service;

import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionService;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.kvmesh.auth.TokenVerifier;
import io.kvmesh.auth.Tokens;
import io.kvmesh.core.admin.AdminHttpServer;
import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.metrics.Metrics;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.OperationPublisher;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.store.Database;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.validate.Validator;
import io.kvmesh.service.auth.AuthInterceptor;
import io.kvmesh.service.config.ServiceConfig;
import io.kvmesh.service.grpc.EagerHeadersInterceptor;
import io.kvmesh.service.grpc.KeyValueService;
import io.kvmesh.service.grpc.MalformedRequestInterceptor;
import io.kvmesh.service.grpc.RequestIdInterceptor;
import io.kvmesh.service.metrics.ServiceMeters;
import io.kvmesh.service.read.ReadPath;
import io.kvmesh.service.watch.EventSubscriber;
import io.kvmesh.service.watch.WatchHub;
import io.kvmesh.service.write.RequestIdCheck;
import io.kvmesh.service.write.SyncWaiters;
import io.kvmesh.service.write.WritePath;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;

/**
 * The kv-service process: wires the store, cache and publisher into the gRPC server, with health and reflection.
 * {@link #create} is the one wiring used by {@code main} and by the tests (which hand in an in-process or
 * ephemeral-port builder).
 */
public final class KvServiceServer {
    private static final Logger log = LoggerFactory.getLogger(KvServiceServer.class);
    private static final long HEALTH_CHECK_MILLIS = 500;
    /** No confirm for this long (or the confirm timeout, if shorter): the broker is out of reach for writes. */
    private static final Duration CONFIRM_STALL = Duration.ofSeconds(2);
    /** The largest request Envoy passes on (envoy.yaml: the transcoder's max_request_body_size). */
    private static final int MAX_REQUEST_BYTES = 8 << 20;

    private final ServiceConfig config;
    private final Server server;
    private final HealthStatusManager health;
    private final Database database;
    private final KvCache cache;
    private final OperationPublisher publisher;
    private final EventSubscriber events;
    private final WatchHub watchHub;
    private final ExecutorService workers;
    private final ExecutorService dbExecutor;
    private final ScheduledExecutorService timer;
    private final HealthMonitor monitor;
    private final PrometheusMeterRegistry registry;
    private AdminHttpServer admin;

    private KvServiceServer(ServiceConfig config, Server server, HealthStatusManager health, Database database,
                            KvCache cache, OperationPublisher publisher, EventSubscriber events, WatchHub watchHub,
                            ExecutorService workers, ExecutorService dbExecutor, ScheduledExecutorService timer,
                            PrometheusMeterRegistry registry) {
        this.config = config;
        this.server = server;
        this.health = health;
        this.database = database;
        this.cache = cache;
        this.publisher = publisher;
        this.events = events;
        this.watchHub = watchHub;
        this.workers = workers;
        this.dbExecutor = dbExecutor;
        this.timer = timer;
        this.registry = registry;
        this.monitor = new HealthMonitor(health, publisher::ensureConnected, publisher::unconfirmedFor,
                confirmStall(config.amqp().confirmTimeout()), events::isSubscribed);
    }

    static Duration confirmStall(Duration confirmTimeout) {
        return confirmTimeout.compareTo(CONFIRM_STALL) < 0 ? confirmTimeout : CONFIRM_STALL;
    }

    public static KvServiceServer create(ServiceConfig config, ServerBuilder<?> builder) throws IOException {
        PrometheusMeterRegistry registry = Metrics.newRegistry("kv-service", config.admin().instance());
        ServiceMeters meters = new ServiceMeters(registry);
        Database database = Database.open(config.postgres(), config.startupTimeout());
        KvCache cache = new KvCache(config.redis(), new Partitioner(config.amqp().partitions()));
        OperationPublisher publisher = new OperationPublisher(config.amqp(), new AmqpConnections(config.amqp()),
                config.publishing(), registry);
        try {
            publisher.connect();
        } catch (IOException e) {
            // writes fail UNAVAILABLE until the broker is back; reads work meanwhile
            log.warn("broker not reachable at start-up ({}); writes will retry the connection", e.getMessage());
        }
        // 0 worker threads: handlers run on the transport's threads. They may: every handler only validates and starts
        // asynchronous work (the cache, the database executor, the publisher's own thread), never blocks.
        ExecutorService workers = config.workerThreads() == 0 ? null
                : Executors.newFixedThreadPool(config.workerThreads(), named("kv-grpc"));
        ExecutorService dbExecutor = Executors.newFixedThreadPool(config.postgres().poolSize(), named("kv-db"));
        Clock clock = Clock.systemUTC();
        SyncWaiters waiters = new SyncWaiters();
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(named("kv-timer"));
        WatchHub watchHub = new WatchHub(config.watch(), timer);
        EventSubscriber events = new EventSubscriber(new AmqpConnections(config.amqp()),
                new QueueTopology(config.amqp()), event -> {
                    meters.eventReceived(event);
                    waiters.complete(event);
                    watchHub.publish(event);
                }, config.eventsIdle(), () -> waiters.size() + watchHub.size()).start();
        meters.bindGauges(waiters::size, watchHub::size, watchHub::bufferedBytes);
        meters.timeWritesWhile(events::isBound);
        KvStore store = new KvStore(database.jdbi());
        KeyValueService service = new KeyValueService(
                new ReadPath(cache, store, dbExecutor, clock, config.pendingMarkTtl(), config.limits().maxPageBytes(),
                        meters),
                new WritePath(publisher, waiters, events::ready, new RequestIdCheck(store, dbExecutor, meters), clock,
                        meters),
                watchHub, events::ready,
                new Validator(config.limits()),
                config.syncTimeout());
        HealthStatusManager health = new HealthStatusManager();
        if (workers == null) {
            builder.directExecutor();
        } else {
            builder.executor(workers);
        }
        List<ServerInterceptor> interceptors = new ArrayList<>(List.of(new RequestIdInterceptor(),
                new EagerHeadersInterceptor()));
        if (config.auth().enabled()) {
            // last in the list = first to run: nothing reaches the service without a token that grants it
            interceptors.add(new AuthInterceptor(new TokenVerifier(Tokens.readPublicKeys(config.auth().publicKeys()),
                    clock)));
            log.info("auth on: KeyValue calls need a bearer token (keys from {})", config.auth().publicKeys());
        }
        // outermost, on every service: each call is counted and timed with the status it really ended with
        builder.intercept(meters.grpcInterceptor());
        Server server = builder
                .addService(MalformedRequestInterceptor.protect(ServerInterceptors.intercept(service, interceptors)))
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                // v1alpha too: deprecated, but what Python's grpcio-reflection, ghz and older tools still speak
                .addService(ProtoReflectionService.newInstance())
                // Room for any request Envoy lets through (its transcoder takes 8 MiB), so a value over the limit
                // reaches the validator and is refused as such (400), not by gRPC's message size check (429)
                .maxInboundMessageSize(Math.max(MAX_REQUEST_BYTES, 2 * config.limits().maxValueBytes()))
                .build();
        return new KvServiceServer(config, server, health, database, cache, publisher, events, watchHub, workers,
                dbExecutor, timer, registry);
    }

    public KvServiceServer start() throws IOException {
        server.start();
        monitor.run();
        timer.scheduleWithFixedDelay(monitor, HEALTH_CHECK_MILLIS, HEALTH_CHECK_MILLIS, TimeUnit.MILLISECONDS);
        log.info("kv-service listening on port {}", server.getPort());
        if (config.admin().enabled()) {
            admin = AdminHttpServer.start(config.admin().bind(), config.admin().port(), monitor::problem,
                    registry::scrape);
            log.info("admin endpoint (/healthz, /metrics) on {}", admin.address());
        }
        return this;
    }

    /** The bound port (useful when the builder asked for port 0). */
    public int port() {
        return server.getPort();
    }

    /** The admin endpoint's bound port (/healthz, /metrics), or -1 without one. */
    public int adminPort() {
        return admin == null ? -1 : admin.address().getPort();
    }

    /** This replica's meters (what /metrics serves). */
    public PrometheusMeterRegistry meterRegistry() {
        return registry;
    }

    /**
     * Marks the server NOT_SERVING and keeps serving for the drain time (so a balancer that health-checks it stops
     * sending requests before its port closes: a rolling restart fails no request), then closes Watch streams and the
     * port, lets in-flight calls finish, and closes clients in reverse order of creation.
     */
    public void stop() {
        monitor.stop();
        health.enterTerminalState();
        long drain = config.shutdownDrain().toMillis();
        if (drain > 0) {
            log.info("draining: NOT_SERVING for {} ms before the port closes", drain);
            try {
                Thread.sleep(drain);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        watchHub.closeAll();
        server.shutdown();
        try {
            if (!server.awaitTermination(config.shutdownGrace().toMillis(), TimeUnit.MILLISECONDS)) {
                server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.shutdownNow();
        }
        timer.shutdownNow();
        if (admin != null) {
            admin.close();
        }
        if (workers != null) {
            workers.shutdown();
        }
        dbExecutor.shutdown();
        events.close();
        publisher.close();
        cache.close();
        database.close();
        log.info("kv-service stopped");
    }

    /** Whether this replica's events queue is bound now (on demand: only around SYNC writes and Watch streams). */
    public boolean eventsBound() {
        return events.isBound();
    }

    /** Whether this replica receives change events (needed for SYNC writes and Watch). */
    public boolean isSubscribed() {
        return events.isSubscribed();
    }

    /** Whether health says SERVING: the replica can publish writes and receives change events. */
    public boolean isServing() {
        return monitor.serving();
    }

    /** The Watch streams of this replica (their count and buffered bytes, for tests and metrics). */
    public WatchHub watchHub() {
        return watchHub;
    }

    /** Simulates a lost event stream (fault-injection tests): the subscriber must notice and subscribe again. */
    public void dropEventSubscription() {
        events.abortConnection();
    }

    public void blockUntilShutdown() throws InterruptedException {
        server.awaitTermination();
    }

    private static ThreadFactory named(String prefix) {
        return Thread.ofPlatform().name(prefix + "-", 0).daemon(true).factory();
    }
}
