package io.kvmesh.consumer.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.DoubleSupplier;

/**
 * The applier's meters, what an operator of kv-consumer watches (served at {@code /metrics}): how big and how slow
 * its transactions are, how far behind the queues it is, and everything that is not a plain apply (duplicates,
 * rejections, retries, dead letters, events that could not be sent, cache updates waiting for Redis). One instance
 * per process; the counters are also what {@code KvConsumer}'s accessors report.
 */
public final class ConsumerMetrics {
    public static final String PREFIX = "kvmesh.consumer.";

    /** Operation results counted by {@code kvmesh.consumer.operations{result=…}}. */
    public enum Result {
        /** Applied now: the key changed, or a delete of a missing key that changed nothing. */
        APPLIED,
        /** Recorded as rejected now: its expected version did not match. */
        REJECTED,
        /** Recognised in the operation log as applied or rejected before (a redelivery or a retried request). */
        DUPLICATE;

        String tag() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** Why something was dead-lettered, the tag of {@code kvmesh.consumer.dead.lettered{reason=…}}. */
    public enum DeadLetterReason {
        /** A whole message that is no operation or batch of operations. */
        UNDECODABLE,
        /** One operation that fails on its own with a non-transient error. */
        CANNOT_APPLY;

        String tag() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private final MeterRegistry registry;
    private final Counter applied;
    private final Counter rejected;
    private final Counter duplicates;
    private final Counter retries;
    private final Counter deadUndecodable;
    private final Counter deadCannotApply;
    private final Counter eventsPublished;
    private final Counter eventsFailed;
    private final Counter deliveries;
    private final Counter redeliveries;
    private final Counter abandoned;
    private final Counter expired;
    private final DistributionSummary batchSize;
    private final Timer applyDuration;
    private final Timer[] lag;
    private final AtomicLongArray backlog;

    public ConsumerMetrics(MeterRegistry registry, int partitions) {
        this.registry = registry;
        this.applied = operations(Result.APPLIED);
        this.rejected = operations(Result.REJECTED);
        this.duplicates = operations(Result.DUPLICATE);
        this.retries = Counter.builder(PREFIX + "retries")
                .description("Batch applies retried because PostgreSQL was unavailable (one per attempt)")
                .tag("cause", "database").register(registry);
        this.deadUndecodable = deadLetterCounter(DeadLetterReason.UNDECODABLE);
        this.deadCannotApply = deadLetterCounter(DeadLetterReason.CANNOT_APPLY);
        this.eventsPublished = Counter.builder(PREFIX + "events.published")
                .description("Change events published to the events exchange (SYNC answers, Watch)")
                .register(registry);
        this.eventsFailed = Counter.builder(PREFIX + "events.failed")
                .description("Change events that could not be published (SYNC callers fall back to their deadline)")
                .register(registry);
        this.deliveries = deliveries(false);
        this.redeliveries = deliveries(true);
        this.abandoned = Counter.builder(PREFIX + "batches.abandoned")
                .description("Batches given back to the broker after an unexpected failure (they are redelivered)")
                .register(registry);
        this.expired = Counter.builder(PREFIX + "expired")
                .description("Entries past their TTL turned into EXPIRE tombstones by the sweep")
                .register(registry);
        this.batchSize = DistributionSummary.builder(PREFIX + "batch.size")
                .description("Operations applied per PostgreSQL transaction")
                .baseUnit("operations")
                .serviceLevelObjectives(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
                .register(registry);
        this.applyDuration = Timer.builder(PREFIX + "apply.duration")
                .description("One batch: the PostgreSQL transaction, the cache update and the events, until the ack")
                .serviceLevelObjectives(millis(1), millis(2), millis(5), millis(10), millis(20), millis(50),
                        millis(100), millis(200), millis(500), millis(1_000), millis(5_000))
                .register(registry);
        this.lag = new Timer[partitions];
        this.backlog = new AtomicLongArray(partitions);
        for (int p = 0; p < partitions; p++) {
            lag[p] = Timer.builder(PREFIX + "apply.lag")
                    .description("From a write's acceptance by a replica to its commit here, per partition")
                    .tag("partition", Integer.toString(p))
                    .serviceLevelObjectives(millis(5), millis(10), millis(25), millis(50), millis(100), millis(250),
                            millis(500), millis(1_000), millis(2_500), millis(10_000))
                    .register(registry);
            backlog.set(p, -1);
            int partition = p;
            Gauge.builder(PREFIX + "queue.backlog", backlog, b -> {
                        long v = b.get(partition);
                        return v < 0 ? Double.NaN : v;
                    })
                    .description("Messages ready in the partition queue, not yet delivered (polled every few seconds;"
                            + " NaN while unknown)")
                    .baseUnit("messages")
                    .tag("partition", Integer.toString(p))
                    .register(registry);
        }
    }

    private static Duration millis(long ms) {
        return Duration.ofMillis(ms);
    }

    private Counter operations(Result result) {
        return Counter.builder(PREFIX + "operations")
                .description("Operations taken from the queues, by result")
                .tag("result", result.tag()).register(registry);
    }

    private Counter deadLetterCounter(DeadLetterReason reason) {
        return Counter.builder(PREFIX + "dead.lettered")
                .description("Messages (undecodable) or single operations (cannot_apply) sent to the dead-letter queue")
                .tag("reason", reason.tag()).register(registry);
    }

    private Counter deliveries(boolean redelivered) {
        return Counter.builder(PREFIX + "deliveries")
                .description("Messages received from the partition queues; redelivered=true after a consumer died or"
                        + " gave them back")
                .tag("redelivered", Boolean.toString(redelivered)).register(registry);
    }

    /** The registry the meters live in. */
    public MeterRegistry registry() {
        return registry;
    }

    /**
     * Registers a gauge {@code kvmesh.consumer.<name>} read from {@code value} at each scrape. Held strongly: a
     * gauge keeps only a weak reference by default, and a lambda or method reference nobody else holds would be
     * collected, leaving the gauge NaN.
     */
    public void gauge(String name, String description, DoubleSupplier value, String... tags) {
        Gauge.builder(PREFIX + name, value, DoubleSupplier::getAsDouble).description(description).tags(tags)
                .strongReference(true).register(registry);
    }

    public void delivered(boolean redelivered) {
        (redelivered ? redeliveries : deliveries).increment();
    }

    /** A batch committed: its size, results, how long it took, and its new operations' lag (accept micros). */
    public void committed(int operations, int appliedNow, int rejectedNow, int duplicateCount, Duration took) {
        batchSize.record(operations);
        applyDuration.record(took);
        applied.increment(appliedNow - rejectedNow);
        rejected.increment(rejectedNow);
        duplicates.increment(duplicateCount);
    }

    /** The time from a new operation's acceptance to its commit, on its partition. */
    public void lag(int partition, Duration lagged) {
        if (partition >= 0 && partition < lag.length && !lagged.isNegative()) {
            lag[partition].record(lagged);
        }
    }

    public void retried() {
        retries.increment();
    }

    public void deadLettered(DeadLetterReason reason) {
        (reason == DeadLetterReason.UNDECODABLE ? deadUndecodable : deadCannotApply).increment();
    }

    public void eventsPublished(int n) {
        eventsPublished.increment(n);
    }

    public void eventsFailed(int n) {
        eventsFailed.increment(n);
    }

    public void abandoned() {
        abandoned.increment();
    }

    public void expired(int n) {
        expired.increment(n);
    }

    /** The broker's count of ready messages in a partition queue; -1 = unknown. */
    public void backlog(int partition, long messages) {
        backlog.set(partition, messages);
    }

    /** Operations with this result so far. */
    public long count(Result result) {
        return (long) switch (result) {
            case APPLIED -> applied.count();
            case REJECTED -> rejected.count();
            case DUPLICATE -> duplicates.count();
        };
    }

    /** Retries of batches so far. */
    public long retries() {
        return (long) retries.count();
    }
}
