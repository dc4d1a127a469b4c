package io.kvmesh.service.metrics;

import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.kvmesh.queue.v1.ChangeEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.grpc.MetricCollectingServerInterceptor;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;

import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Every meter of a kv-service replica, named in one place (the web UI's metrics page and the README list the same
 * names). The read path, write path and event stream report what happened through the methods below; the gRPC
 * requests themselves are counted and timed by Micrometer's own server interceptor ({@link #grpcInterceptor}).
 * <p>
 * In Prometheus text: {@code grpc_server_processing_duration_seconds{method,statusCode}}, {@code
 * kvmesh_cache_reads_total{source}}, {@code kvmesh_cache_errors_total}, {@code kvmesh_publish_seconds{outcome}},
 * {@code kvmesh_request_id_checks_total{outcome}}, {@code kvmesh_sync_wait_seconds{outcome}}, {@code
 * kvmesh_sync_waiting}, {@code kvmesh_events_received_total{outcome}}, {@code kvmesh_events_lag_seconds}, {@code
 * kvmesh_watch_streams}, {@code kvmesh_watch_buffered_bytes}.
 */
public final class ServiceMeters {
    /** Latency buckets from 1 ms to 10 s: enough for a p99 of anything a request does, few enough to scrape often. */
    private static final Duration MIN_EXPECTED = Duration.ofMillis(1);
    private static final Duration MAX_EXPECTED = Duration.ofSeconds(10);
    /**
     * Writes of this replica whose change event has not arrived yet, at most this many (an event lost, or a write
     * the appliers never apply, must not grow the map: past the bound new writes are simply not timed).
     */
    static final int MAX_TIMED_WRITES = 100_000;

    /** What a request id check decided. */
    public enum RequestIdOutcome {
        /** the id was not used before: the write goes ahead */
        NEW,
        /** the same write again under its id: it goes ahead and gets the first outcome */
        RETRY,
        /** the id named a different write: refused */
        REUSED,
        /** the database could not record the id: the write is refused as UNAVAILABLE (a retry is safe) */
        UNAVAILABLE
    }

    /** How a SYNC write's wait for its apply ended. */
    public enum SyncOutcome {
        APPLIED, REJECTED, TIMEOUT
    }

    private final MeterRegistry registry;
    private final Counter cacheHits;
    private final Counter cacheMisses;
    private final Counter cacheErrors;
    private final Timer publishConfirmed;
    private final Timer publishFailed;
    private final Map<RequestIdOutcome, Counter> requestIdChecks = new EnumMap<>(RequestIdOutcome.class);
    private final Map<SyncOutcome, Timer> syncWaits = new EnumMap<>(SyncOutcome.class);
    private final Map<ChangeEvent.Outcome, Counter> eventsReceived = new EnumMap<>(ChangeEvent.Outcome.class);
    private final Timer eventLag;
    /** Operation id → System.nanoTime() when this replica accepted the write. */
    private final ConcurrentMap<String, Long> acceptedWrites = new ConcurrentHashMap<>();
    private final LongSupplier nanoTime;
    private volatile BooleanSupplier eventsFlowing = () -> true;
    private final AtomicLong lastPrune;
    static final long STALE_NANOS = TimeUnit.MINUTES.toNanos(1);
    private static final long PRUNE_EVERY_NANOS = TimeUnit.SECONDS.toNanos(1);

    public ServiceMeters(MeterRegistry registry) {
        this(registry, System::nanoTime);
    }

    ServiceMeters(MeterRegistry registry, LongSupplier nanoTime) {
        this.registry = registry;
        this.nanoTime = nanoTime;
        this.lastPrune = new AtomicLong(nanoTime.getAsLong() - PRUNE_EVERY_NANOS);
        cacheHits = cacheReads("redis");
        cacheMisses = cacheReads("postgres");
        cacheErrors = Counter.builder("kvmesh.cache.errors")
                .description("Redis calls that failed or timed out (the read went to PostgreSQL)").register(registry);
        publishConfirmed = publishTimer("confirmed");
        publishFailed = publishTimer("failed");
        for (RequestIdOutcome o : RequestIdOutcome.values()) {
            requestIdChecks.put(o, Counter.builder("kvmesh.request.id.checks").tag("outcome", lower(o))
                    .description("writes with a request id, by what the check of the id decided").register(registry));
        }
        for (SyncOutcome o : SyncOutcome.values()) {
            syncWaits.put(o, latency(Timer.builder("kvmesh.sync.wait").tag("outcome", lower(o))
                    .description("SYNC writes: from the broker's confirm to the applier's change event (or the time-out)")));
        }
        for (ChangeEvent.Outcome o : new ChangeEvent.Outcome[] {
                ChangeEvent.Outcome.APPLIED, ChangeEvent.Outcome.UNCHANGED, ChangeEvent.Outcome.REJECTED}) {
            eventsReceived.put(o, Counter.builder("kvmesh.events.received").tag("outcome", lower(o))
                    .description("change events this replica received from the appliers").register(registry));
        }
        eventLag = latency(Timer.builder("kvmesh.events.lag")
                .description("write-visible lag: from a write's acceptance by this replica to its change event coming"
                        + " back, i.e. confirmed by the broker, applied to PostgreSQL and the cache, and announced"));
    }

    /** Meters that go nowhere, for tests that do not look at them. */
    public static ServiceMeters none() {
        return new ServiceMeters(new CompositeMeterRegistry());
    }

    /**
     * Micrometer's gRPC server interceptor on this registry: {@code grpc.server.requests.received} and {@code
     * grpc.server.responses.sent} by method, and {@code grpc.server.processing.duration} by method and status code,
     * with histogram buckets so Prometheus computes any percentile across replicas.
     */
    public ServerInterceptor grpcInterceptor() {
        return new MetricCollectingServerInterceptor(registry, counter -> counter,
                timer -> timer.publishPercentileHistogram().minimumExpectedValue(MIN_EXPECTED)
                        .maximumExpectedValue(MAX_EXPECTED), Status.Code.OK);
    }

    /** A Get was answered from {@code source}: {@code "redis"} (a cache hit) or {@code "postgres"} (a miss). */
    public void cacheRead(String source) {
        ("redis".equals(source) ? cacheHits : cacheMisses).increment();
    }

    public void cacheError() {
        cacheErrors.increment();
    }

    /** A write's publish ended: confirmed durable by the broker, or failed; {@code nanos} after it was handed over. */
    public void published(long nanos, boolean confirmed) {
        (confirmed ? publishConfirmed : publishFailed).record(nanos, TimeUnit.NANOSECONDS);
    }

    public void requestIdChecked(RequestIdOutcome outcome) {
        requestIdChecks.get(outcome).increment();
    }

    public void syncWaited(long nanos, SyncOutcome outcome) {
        syncWaits.get(outcome).record(nanos, TimeUnit.NANOSECONDS);
    }

    /**
     * Times writes only while {@code eventsFlowing} holds: the replica receives change events only while a SYNC write
     * or a Watch needs them (EventSubscriber), and a write whose event will not come must not hold a slot.
     */
    public void timeWritesWhile(BooleanSupplier eventsFlowing) {
        this.eventsFlowing = eventsFlowing;
    }

    /** This replica accepted a write: its write-visible lag runs until its change event arrives. */
    public void writeAccepted(String operationId) {
        if (!eventsFlowing.getAsBoolean()) {
            return;
        }
        long now = nanoTime.getAsLong();
        if (acceptedWrites.size() >= MAX_TIMED_WRITES) {
            pruneStale(now);
            if (acceptedWrites.size() >= MAX_TIMED_WRITES) {
                return;
            }
        }
        acceptedWrites.put(operationId, now);
    }

    /** When full, forgets (at most once a second) writes whose event did not come within a minute: it never will. */
    private void pruneStale(long now) {
        long last = lastPrune.get();
        if (now - last < PRUNE_EVERY_NANOS || !lastPrune.compareAndSet(last, now)) {
            return;
        }
        acceptedWrites.values().removeIf(t -> now - t > STALE_NANOS);
    }

    /** A write of this replica failed before the broker confirmed it: no event will come. */
    public void writeFailed(String operationId) {
        acceptedWrites.remove(operationId);
    }

    /**
     * A change event arrived (every replica receives every event); the first event of a write this replica accepted
     * gives its write-visible lag. Measured where the write was accepted, so no two clocks are compared.
     */
    public void eventReceived(ChangeEvent event) {
        Counter c = eventsReceived.get(event.getOutcome());
        if (c != null) {
            c.increment();
        }
        Long accepted = acceptedWrites.remove(event.getOperationId());
        if (accepted != null) {
            eventLag.record(nanoTime.getAsLong() - accepted, TimeUnit.NANOSECONDS);
        }
    }

    /** Writes whose lag is still running (tests). */
    int timedWrites() {
        return acceptedWrites.size();
    }

    /** Gauges read at each scrape: SYNC writes waiting, Watch streams open and the bytes they hold. */
    public void bindGauges(Supplier<Number> syncWaiting, Supplier<Number> watchStreams,
                           Supplier<Number> watchBufferedBytes) {
        Gauge.builder("kvmesh.sync.waiting", syncWaiting).description("SYNC writes waiting for their apply")
                .register(registry);
        Gauge.builder("kvmesh.watch.streams", watchStreams).description("open Watch streams").register(registry);
        Gauge.builder("kvmesh.watch.buffered", watchBufferedBytes).baseUnit("bytes")
                .description("bytes of events Watch streams hold for clients that have not read them yet")
                .register(registry);
    }

    private Counter cacheReads(String source) {
        return Counter.builder("kvmesh.cache.reads").tag("source", source)
                .description("Get answers by where the entry came from: redis (a cache hit) or postgres (a miss)")
                .register(registry);
    }

    private Timer publishTimer(String outcome) {
        return latency(Timer.builder("kvmesh.publish").tag("outcome", outcome)
                .description("writes handed to the publisher, until the broker confirmed the message carrying them"
                        + " durable (or the publish failed)"));
    }

    private Timer latency(Timer.Builder builder) {
        return builder.publishPercentileHistogram().minimumExpectedValue(MIN_EXPECTED)
                .maximumExpectedValue(MAX_EXPECTED).register(registry);
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(java.util.Locale.ROOT);
    }
}
