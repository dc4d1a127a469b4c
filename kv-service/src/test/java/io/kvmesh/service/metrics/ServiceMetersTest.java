package io.kvmesh.service.metrics;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.core.config.Limits;
import io.kvmesh.core.metrics.Metrics;
import io.kvmesh.core.validate.Validator;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.service.grpc.KeyValueService;
import io.kvmesh.service.grpc.MalformedRequestInterceptor;
import io.kvmesh.service.metrics.ServiceMeters.RequestIdOutcome;
import io.kvmesh.service.metrics.ServiceMeters.SyncOutcome;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * What a replica's /metrics says: the gRPC interceptor counts and times each call by method and status code (wired
 * as {@code KvServiceServer} wires it, in-process), and each kvmesh meter counts what it is told, in Prometheus text.
 */
class ServiceMetersTest {
    private PrometheusMeterRegistry registry;
    private ServiceMeters meters;
    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
    private Server server;
    private ManagedChannel channel;

    @BeforeEach
    void setUp() throws Exception {
        registry = Metrics.newRegistry("kv-service", "kv-service-test");
        meters = new ServiceMeters(registry, nanos::get);
        String name = UUID.randomUUID().toString();
        // the read and write paths are absent: only requests that fail their check are sent
        server = InProcessServerBuilder.forName(name).directExecutor()
                .intercept(meters.grpcInterceptor())
                .addService(MalformedRequestInterceptor.protect(new KeyValueService(null, null, null, () -> java.util.concurrent.CompletableFuture.completedFuture(null),
                        new Validator(new Limits(16, 32, 10, 50, 1 << 20)), Duration.ofSeconds(1)).bindService()))
                .build().start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    }

    @AfterEach
    void tearDown() {
        channel.shutdownNow();
        server.shutdownNow();
    }

    @Test
    void grpcInterceptor_countsAndTimesEachCall_byMethodAndStatusCode() {
        KeyValueGrpc.KeyValueBlockingStub stub = KeyValueGrpc.newBlockingStub(channel);
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> stub.get(GetRequest.getDefaultInstance())).isInstanceOf(StatusRuntimeException.class);
        }
        assertThatThrownBy(() -> stub.put(PutRequest.newBuilder().setValue("v").build()))
                .isInstanceOf(StatusRuntimeException.class);

        Timer get = registry.get("grpc.server.processing.duration").tag("method", "Get")
                .tag("statusCode", "INVALID_ARGUMENT").timer();
        assertThat(get.count()).isEqualTo(3);
        assertThat(registry.get("grpc.server.processing.duration").tag("method", "Put")
                .tag("statusCode", "INVALID_ARGUMENT").timer().count()).isEqualTo(1);
        assertThat(registry.get("grpc.server.requests.received").tag("method", "Get").counter().count()).isEqualTo(3);
        assertThat(registry.get("grpc.server.responses.sent").tag("method", "Get").counter().count())
                .as("messages sent: an error carries none").isZero();

        String text = registry.scrape();
        assertThat(text).contains("grpc_server_processing_duration_seconds_bucket{")
                .containsPattern("grpc_server_processing_duration_seconds_count\\{[^}]*method=\"Get\"[^}]*"
                        + "statusCode=\"INVALID_ARGUMENT\"[^}]*} 3")
                .contains("application=\"kv-service\"", "instance=\"kv-service-test\"");
    }

    @Test
    void cacheReads_countHitsAndMissesBySource() {
        meters.cacheRead("redis");
        meters.cacheRead("redis");
        meters.cacheRead("postgres");
        meters.cacheError();

        assertThat(registry.get("kvmesh.cache.reads").tag("source", "redis").counter().count()).isEqualTo(2);
        assertThat(registry.get("kvmesh.cache.reads").tag("source", "postgres").counter().count()).isEqualTo(1);
        assertThat(registry.scrape()).containsPattern("kvmesh_cache_reads_total\\{[^}]*source=\"redis\"[^}]*} 2")
                .containsPattern("kvmesh_cache_errors_total\\{[^}]*} 1");
    }

    @Test
    void publishes_areTimed_byOutcome() {
        meters.published(TimeUnit.MILLISECONDS.toNanos(4), true);
        meters.published(TimeUnit.MILLISECONDS.toNanos(6), true);
        meters.published(TimeUnit.SECONDS.toNanos(5), false);

        Timer confirmed = registry.get("kvmesh.publish").tag("outcome", "confirmed").timer();
        assertThat(confirmed.count()).isEqualTo(2);
        assertThat(confirmed.totalTime(TimeUnit.MILLISECONDS)).isEqualTo(10);
        assertThat(registry.get("kvmesh.publish").tag("outcome", "failed").timer().count()).isEqualTo(1);
        assertThat(registry.scrape()).contains("kvmesh_publish_seconds_bucket{");
    }

    @Test
    void requestIdChecks_andSyncWaits_areCountedByOutcome() {
        meters.requestIdChecked(RequestIdOutcome.NEW);
        meters.requestIdChecked(RequestIdOutcome.REUSED);
        meters.requestIdChecked(RequestIdOutcome.REUSED);
        meters.syncWaited(TimeUnit.MILLISECONDS.toNanos(20), SyncOutcome.APPLIED);
        meters.syncWaited(TimeUnit.SECONDS.toNanos(5), SyncOutcome.TIMEOUT);

        assertThat(registry.get("kvmesh.request.id.checks").tag("outcome", "reused").counter().count()).isEqualTo(2);
        assertThat(registry.get("kvmesh.request.id.checks").tag("outcome", "retry").counter().count()).isZero();
        assertThat(registry.get("kvmesh.sync.wait").tag("outcome", "timeout").timer().count()).isEqualTo(1);
        assertThat(registry.get("kvmesh.sync.wait").tag("outcome", "applied").timer().count()).isEqualTo(1);
        assertThat(registry.scrape()).containsPattern("kvmesh_request_id_checks_total\\{[^}]*outcome=\"new\"[^}]*} 1")
                .containsPattern("kvmesh_sync_wait_seconds_count\\{[^}]*outcome=\"timeout\"[^}]*} 1");
    }

    @Test
    void events_areCountedByOutcome_andTimeTheWritesThisReplicaAccepted_once() {
        meters.writeAccepted("op-mine");
        meters.writeAccepted("op-failed");
        meters.writeFailed("op-failed");
        nanos.addAndGet(TimeUnit.MILLISECONDS.toNanos(30));
        ChangeEvent mine = ChangeEvent.newBuilder().setOperationId("op-mine").setOutcome(ChangeEvent.Outcome.APPLIED).build();
        meters.eventReceived(mine);
        meters.eventReceived(mine.toBuilder().setReplayed(true).build());
        meters.eventReceived(ChangeEvent.newBuilder().setOperationId("op-of-another-replica")
                .setOutcome(ChangeEvent.Outcome.REJECTED).build());

        assertThat(registry.get("kvmesh.events.received").tag("outcome", "applied").counter().count()).isEqualTo(2);
        assertThat(registry.get("kvmesh.events.received").tag("outcome", "rejected").counter().count()).isEqualTo(1);
        Timer lag = registry.get("kvmesh.events.lag").timer();
        assertThat(lag.count()).as("the first event of this replica's one confirmed write").isEqualTo(1);
        assertThat(lag.totalTime(TimeUnit.MILLISECONDS)).isEqualTo(30);
        assertThat(meters.timedWrites()).isZero();
    }

    @Test
    void timedWrites_areBounded() {
        for (int i = 0; i < ServiceMeters.MAX_TIMED_WRITES + 10; i++) {
            meters.writeAccepted("op-" + i);
        }
        assertThat(meters.timedWrites()).isEqualTo(ServiceMeters.MAX_TIMED_WRITES);
        nanos.addAndGet(ServiceMeters.STALE_NANOS + 1);
        meters.writeAccepted("op-after-a-minute");
        assertThat(meters.timedWrites()).as("writes whose event never came are forgotten when full").isEqualTo(1);
    }

    @Test
    void writes_areNotTimed_whileTheReplicaReceivesNoEvents() {
        AtomicBoolean flowing = new AtomicBoolean(false);
        meters.timeWritesWhile(flowing::get);
        meters.writeAccepted("op-unbound");
        assertThat(meters.timedWrites()).isZero();
        flowing.set(true);
        meters.writeAccepted("op-bound");
        assertThat(meters.timedWrites()).isEqualTo(1);
    }

    @Test
    void gauges_readTheirSourcesAtEachScrape() {
        AtomicInteger streams = new AtomicInteger();
        meters.bindGauges(() -> 2, streams::get, () -> 4096L);
        streams.set(3);

        assertThat(registry.scrape()).containsPattern("kvmesh_sync_waiting\\{[^}]*} 2")
                .containsPattern("kvmesh_watch_streams\\{[^}]*} 3")
                .containsPattern("kvmesh_watch_buffered_bytes\\{[^}]*} 4096");
    }
}
