package io.kvmesh.consumer.apply;

import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.core.retry.Backoff;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.Operation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.BooleanSupplier;

/**
 * Commits one group of deliveries: applies their operations in one transaction, then brings the cache up to date
 * (returning only once no reader can be served an older state of those keys, {@link CacheSink#update}), publishes
 * the change events and (if asked) acknowledges them, in that order. While PostgreSQL is unavailable it
 * holds the group and retries with back-off (no ack, no requeue, so an outage dead-letters nothing). Before each
 * attempt, deliveries whose channel closed are dropped unapplied: the broker redelivers them, to this consumer or to
 * the one that takes the partition over.
 */
final class BatchCommitter {
    private static final Logger log = LoggerFactory.getLogger(BatchCommitter.class);

    private final String name;
    private final Applier applier;
    private final CacheSink cache;
    private final AfterCommit afterCommit;
    private final Clock clock;
    private final Backoff backoff;
    private final ConsumerMetrics metrics;
    private final BooleanSupplier running;

    BatchCommitter(String name, Applier applier, CacheSink cache, AfterCommit afterCommit, Clock clock,
                   Backoff backoff, ConsumerMetrics metrics, BooleanSupplier running) {
        this.name = name;
        this.applier = applier;
        this.cache = cache;
        this.afterCommit = afterCommit;
        this.clock = clock;
        this.backoff = backoff;
        this.metrics = metrics;
        this.running = running;
    }

    /**
     * True when committed, or when nothing is left to commit (every channel closed, or the worker stopping: the
     * broker redelivers); false on a failure that retrying will not mend.
     */
    boolean commit(List<DecodedDelivery> units, boolean ack) throws InterruptedException {
        Backoff.Delays delays = backoff.delays();
        while (running.getAsBoolean()) {
            units = units.stream().filter(u -> u.channel().isOpen()).toList();
            if (units.isEmpty()) {
                return true;
            }
            List<Operation> ops = new ArrayList<>();
            units.forEach(u -> ops.addAll(u.ops()));
            units.forEach(u -> cache.applying(u.channel()));
            if (ops.isEmpty()) { // cache permit requests only: nothing to apply
                if (ack) {
                    Acks.ackAll(units);
                }
                return true;
            }
            long started = System.nanoTime();
            // millisecond precision: what PostgreSQL and the cache hold must read back the same
            Instant now = clock.instant().truncatedTo(ChronoUnit.MILLIS);
            ApplyResult result;
            try {
                result = applier.apply(ops, now);
            } catch (RuntimeException e) {
                if (!KvStore.isTransient(e)) {
                    log.warn("{}: batch of {} failed: {}", name, ops.size(), e.toString());
                    return false;
                }
                metrics.retried();
                Duration pause = delays.next();
                log.warn("{}: database unavailable, retrying in {} ms: {}", name, pause.toMillis(), e.getMessage());
                Thread.sleep(pause);
                continue;
            }
            afterCommit.committed(ops);
            cache.update(result.changed());
            publish(units.getLast().channel(), result.events());
            if (ack) {
                Acks.ackAll(units);
            }
            metrics.committed(ops.size(), result.appliedNow(), result.rejected(), result.duplicates(),
                    Duration.ofNanos(System.nanoTime() - started));
            recordLag(units, result, now);
            return true;
        }
        return true;
    }

    private void publish(PartitionChannel channel, List<ChangeEvent> events) {
        if (events.isEmpty()) {
            return;
        }
        if (channel.publishEvents(events)) {
            metrics.eventsPublished(events.size());
        } else {
            metrics.eventsFailed(events.size());
        }
    }

    /** Acceptance to commit, for the operations applied now (a redelivered duplicate's age says nothing). */
    private void recordLag(List<DecodedDelivery> units, ApplyResult result, Instant now) {
        Set<String> skip = new HashSet<>();
        if (result.duplicates() > 0) {
            result.events().stream().filter(ChangeEvent::getReplayed).forEach(e -> skip.add(e.getOperationId()));
        }
        for (DecodedDelivery u : units) {
            for (Operation op : u.ops()) {
                if (op.getAcceptTimeMicros() > 0 && skip.add(op.getId())) {
                    metrics.lag(u.channel().partition(),
                            Duration.between(Micros.toInstant(op.getAcceptTimeMicros()), now));
                }
            }
        }
    }
}
