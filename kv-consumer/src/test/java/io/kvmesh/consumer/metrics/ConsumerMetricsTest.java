package io.kvmesh.consumer.metrics;

import io.kvmesh.consumer.metrics.ConsumerMetrics.DeadLetterReason;
import io.kvmesh.consumer.metrics.ConsumerMetrics.Result;
import io.kvmesh.core.metrics.Metrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;

class ConsumerMetricsTest {

    @Test
    void committed_countsResultsBatchSizeAndDuration() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ConsumerMetrics metrics = new ConsumerMetrics(registry, 2);

        metrics.committed(10, 7, 2, 3, Duration.ofMillis(4));
        metrics.committed(2, 2, 0, 0, Duration.ofMillis(6));

        assertThat(metrics.count(Result.APPLIED)).isEqualTo(7);
        assertThat(metrics.count(Result.REJECTED)).isEqualTo(2);
        assertThat(metrics.count(Result.DUPLICATE)).isEqualTo(3);
        assertThat(registry.get("kvmesh.consumer.batch.size").summary().count()).isEqualTo(2);
        assertThat(registry.get("kvmesh.consumer.batch.size").summary().totalAmount()).isEqualTo(12);
        assertThat(registry.get("kvmesh.consumer.apply.duration").timer().count()).isEqualTo(2);
    }

    @Test
    void gauge_ofALambdaNobodyElseHolds_survivesGarbageCollection() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ConsumerMetrics metrics = new ConsumerMetrics(registry, 1);
        int[] backlog = {3};
        metrics.gauge("cache.permits", "partitions held", () -> backlog[0]);

        // collect until an object nobody holds is gone: the gauge's supplier would have gone with it if held weakly
        java.lang.ref.WeakReference<Object> sentinel = new java.lang.ref.WeakReference<>(new Object());
        for (int i = 0; i < 100 && sentinel.get() != null; i++) {
            System.gc();
        }
        assertThat(sentinel.get()).as("a garbage collection ran").isNull();

        assertThat(registry.get("kvmesh.consumer.cache.permits").gauge().value()).isEqualTo(3);
    }

    @Test
    void lagAndBacklog_arePerPartition() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ConsumerMetrics metrics = new ConsumerMetrics(registry, 2);

        metrics.lag(1, Duration.ofMillis(30));
        metrics.lag(5, Duration.ofMillis(30)); // no such partition: ignored
        metrics.backlog(0, 42);

        assertThat(registry.get("kvmesh.consumer.apply.lag").tag("partition", "1").timer().count()).isEqualTo(1);
        assertThat(registry.get("kvmesh.consumer.apply.lag").tag("partition", "0").timer().count()).isZero();
        assertThat(registry.get("kvmesh.consumer.queue.backlog").tag("partition", "0").gauge().value()).isEqualTo(42);
        assertThat(registry.get("kvmesh.consumer.queue.backlog").tag("partition", "1").gauge().value()).isNaN();
    }

    @Test
    void scrape_showsEveryMeterAnOperatorNeeds() {
        PrometheusMeterRegistry registry = Metrics.newRegistry("kv-consumer", "kv-consumer-test");
        ConsumerMetrics metrics = new ConsumerMetrics(registry, 2);
        metrics.gauge("cache.permits", "partitions held", () -> 3);
        metrics.committed(4, 3, 1, 0, Duration.ofMillis(2)); // 3 new (1 of them rejected), 1 not counted
        metrics.lag(0, Duration.ofMillis(12));
        metrics.retried();
        metrics.deadLettered(DeadLetterReason.CANNOT_APPLY);
        metrics.deadLettered(DeadLetterReason.UNDECODABLE);
        metrics.eventsPublished(4);
        metrics.delivered(true);
        metrics.backlog(1, 7);
        metrics.expired(2);

        String text = registry.scrape();

        assertThat(text).contains(
                "kvmesh_consumer_operations_total{application=\"kv-consumer\",instance=\"kv-consumer-test\","
                        + "result=\"applied\"} 2.0",
                "result=\"rejected\"} 1.0",
                "result=\"duplicate\"} 0.0",
                "kvmesh_consumer_batch_size_operations_count{",
                "kvmesh_consumer_batch_size_operations_bucket{",
                "kvmesh_consumer_apply_duration_seconds_count{",
                "kvmesh_consumer_apply_lag_seconds_bucket{",
                "partition=\"0\"",
                "kvmesh_consumer_queue_backlog_messages{",
                "partition=\"1\"} 7.0",
                "kvmesh_consumer_retries_total{",
                "kvmesh_consumer_dead_lettered_total{",
                "reason=\"cannot_apply\"} 1.0",
                "reason=\"undecodable\"} 1.0",
                "kvmesh_consumer_events_published_total{",
                "kvmesh_consumer_events_failed_total{",
                "kvmesh_consumer_deliveries_total{",
                "redelivered=\"true\"} 1.0",
                "kvmesh_consumer_cache_permits{",
                "kvmesh_consumer_expired_total{",
                "kvmesh_consumer_batches_abandoned_total{");
    }
}
