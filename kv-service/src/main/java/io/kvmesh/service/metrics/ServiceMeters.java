package io.kvmesh.service.metrics;

import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.queue.v1.ChangeEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.grpc.MetricCollectingServerInterceptor;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;

import java.time.Clock;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
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

    /** What a request id check decided. */
    public enum RequestIdOutcome {
        /** the id was not used before: the write goes ahead */
        NEW,
        /** the same write again under its id: it goes ahead and gets the first outcome */
        RETRY,
        /** the id named a different write: refused */
        REUSED,
        /** neither Redis nor PostgreSQL could answer: the write goes ahead unchecked */
        UNCHECKED
    }

    /** How a SYNC write's wait for its apply ended. */
    public enum SyncOutcome {
        APPLIED, REJECTED, TIMEOUT
    }

    private final MeterRegistry registry;
    private final Clock clock;
    private final Counter cacheHits;
    private final Counter cacheMisses;
    private final Counter cacheErrors;
    private final Timer publishConfirmed;
    private final Timer publishFailed;
    private final Map<RequestIdOutcome, Counter> requestIdChecks = new EnumMap<>(RequestIdOutcome.class);
    private final Map<SyncOutcome, Timer> syncWaits = new EnumMap<>(SyncOutcome.class);
    private final Map<ChangeEvent.Outcome, Counter> eventsReceived = new EnumMap<>(ChangeEvent.Outcome.class);
    private final Timer eventLag;

    public ServiceMeters(MeterRegistry registry, Clock clock) {
        this.registry = registry;
        this.clock = clock;
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
                .description("write-visible lag: from a write's acceptance (any replica) to its change event reaching"
                        + " this one, i.e. applied to PostgreSQL and the cache; writes without a request id only"));
    }

    /** Meters that go nowhere, for tests that do not look at them. */
    public static ServiceMeters none() {
        return new ServiceMeters(new CompositeMeterRegistry(), Clock.systemUTC());
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

    /** A change event arrived; a first (not replayed) apply of a time-ordered operation id also gives its lag. */
    public void eventReceived(ChangeEvent event) {
        Counter c = eventsReceived.get(event.getOutcome());
        if (c != null) {
            c.increment();
        }
        if (event.getReplayed()) {
            return;
        }
        OptionalLong accepted = OperationCodec.acceptMillis(event.getOperationId());
        if (accepted.isPresent()) {
            eventLag.record(Math.max(0, clock.millis() - accepted.getAsLong()), TimeUnit.MILLISECONDS);
        }
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
