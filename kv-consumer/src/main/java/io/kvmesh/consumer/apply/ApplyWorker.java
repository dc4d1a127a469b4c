package io.kvmesh.consumer.apply;

import com.google.protobuf.InvalidProtocolBufferException;
import com.rabbitmq.client.Channel;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.queue.v1.Operation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Applies the deliveries of a group of partitions: takes what has arrived (up to the batch size in operations, from
 * every partition of the group; a delivery carries one operation or a batch of them), applies it in one transaction,
 * updates the cache, publishes the change events, then acknowledges each partition's channel up to its last
 * delivery. One FIFO inbox keeps every partition's deliveries in queue order, and partitions never share a key, so
 * per-key order holds while one transaction's fixed cost is shared by all the partitions that had work. While
 * PostgreSQL is down it holds the batch and retries with back-off (no ack, no requeue, so an outage dead-letters
 * nothing). Deliveries whose channel closed are dropped unapplied: the broker redelivers them, to this consumer or to
 * the one that takes the partition over. An operation that can never apply is found by applying one delivery, then
 * one operation, at a time, and dead-lettered alone; the rest of its batch applies.
 */
public final class ApplyWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(ApplyWorker.class);

    /** A delivery and the operations it carries, in queue order. */
    private record Unit(Delivery delivery, List<Operation> ops) {
    }

    private final String name;
    private final BatchApplier applier;
    private final CacheUpdater cacheUpdater;
    private final EventPublisher events;
    private final DeadLetters deadLetters;
    private final AfterCommit afterCommit;
    private final Clock clock;
    private final int batchSize;
    private final Duration backoffMax;
    private final BlockingQueue<Delivery> inbox = new LinkedBlockingQueue<>();
    private final AtomicLong applied = new AtomicLong();
    private final AtomicLong duplicates = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();
    private volatile boolean running = true;

    public ApplyWorker(String name, BatchApplier applier, CacheUpdater cacheUpdater, EventPublisher events,
                       DeadLetters deadLetters, AfterCommit afterCommit, Clock clock, int batchSize,
                       Duration backoffMax) {
        this.name = name;
        this.applier = applier;
        this.cacheUpdater = cacheUpdater;
        this.events = events;
        this.deadLetters = deadLetters;
        this.afterCommit = afterCommit;
        this.clock = clock;
        this.batchSize = batchSize;
        this.backoffMax = backoffMax;
    }

    /** Called on a partition channel's dispatch thread for each delivery, in queue order. */
    public void offer(Delivery delivery) {
        inbox.add(delivery);
    }

    /** Operations this worker applied (duplicates excluded). */
    public long appliedCount() {
        return applied.get();
    }

    /** Operations this worker recognised as applied before (redeliveries, retried requests) and skipped. */
    public long duplicateCount() {
        return duplicates.get();
    }

    /** Batches retried because the database was unavailable. */
    public long retryCount() {
        return retries.get();
    }

    public void stop() {
        running = false;
    }

    @Override
    public void run() {
        List<Unit> batch = new ArrayList<>();
        while (running) {
            try {
                Delivery first = inbox.poll(200, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                int ops = take(first, batch);
                for (Delivery d; ops < batchSize && (d = inbox.poll()) != null; ) {
                    ops += take(d, batch);
                }
                process(batch);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                log.error("{}: unexpected failure; the batch will be redelivered", name, e);
                batch.forEach(u -> abandon(u.delivery().channel()));
            } finally {
                batch.clear();
            }
        }
    }

    /** Decodes a delivery into the batch; an undecodable one is dead-lettered. Returns its operation count. */
    private int take(Delivery d, List<Unit> batch) {
        if (!d.channel().isOpen()) {
            return 0;
        }
        try {
            List<Operation> ops = OperationCodec.decodeMessage(d.contentType(), d.body());
            batch.add(new Unit(d, ops));
            return ops.size();
        } catch (InvalidProtocolBufferException e) {
            log.error("{}: undecodable message dead-lettered: {}", name, e.getMessage());
            reject(d);
            return 0;
        }
    }

    private void process(List<Unit> batch) throws InterruptedException {
        if (batch.isEmpty() || applyWithRetry(batch, true)) {
            return;
        }
        // a non-transient failure: find what cannot apply, one delivery and then one operation at a time
        for (Unit u : batch) {
            if (applyWithRetry(List.of(u), true)) {
                continue;
            }
            if (u.ops().size() == 1) {
                log.error("{}: operation {} on key {} can never apply; dead-lettered", name,
                        u.ops().getFirst().getId(), u.ops().getFirst().getKey());
                reject(u.delivery());
                continue;
            }
            for (Operation op : u.ops()) {
                if (applyWithRetry(List.of(new Unit(u.delivery(), List.of(op))), false)) {
                    continue;
                }
                log.error("{}: operation {} on key {} can never apply; dead-lettered alone, the rest of its batch"
                        + " applies", name, op.getId(), op.getKey());
                try {
                    deadLetters.publish(op, "could not be applied");
                } catch (IOException e) {
                    log.warn("{}: could not dead-letter operation {} ({}); its batch will be redelivered", name,
                            op.getId(), e.getMessage());
                    abandon(u.delivery().channel());
                    return;
                }
            }
            ackAll(List.of(u));
        }
    }

    /**
     * Applies the operations of {@code units} in one transaction, then cache, events and (if {@code ack}) acks. True
     * when applied (or dropped because their channel closed: they are redelivered); false on a non-transient failure.
     */
    private boolean applyWithRetry(List<Unit> units, boolean ack) throws InterruptedException {
        long backoff = 50;
        while (running) {
            // a partition's channel closed mid-batch: drop its deliveries (they are redelivered), keep the rest
            units = units.stream().filter(u -> u.delivery().channel().isOpen()).toList();
            if (units.isEmpty()) {
                return true;
            }
            List<Operation> ops = new ArrayList<>();
            units.forEach(u -> ops.addAll(u.ops()));
            ApplyResult result;
            try {
                // millisecond precision: what PostgreSQL and the cache hold must read back the same
                result = applier.apply(ops, clock.instant().truncatedTo(ChronoUnit.MILLIS));
            } catch (RuntimeException e) {
                if (!KvStore.isTransient(e)) {
                    log.warn("{}: batch of {} failed: {}", name, ops.size(), e.toString());
                    return false;
                }
                retries.incrementAndGet();
                log.warn("{}: database unavailable, retrying in {} ms: {}", name, backoff, e.getMessage());
                Thread.sleep(backoff);
                backoff = Math.min(backoff * 2, backoffMax.toMillis());
                continue;
            }
            afterCommit.committed(ops);
            cacheUpdater.update(result.changed());
            // only operations with a request id have a mark (the others' ids carry their accept time)
            cacheUpdater.clearPending(ops.stream().filter(op -> !op.getRequestId().isEmpty()).map(Operation::getId)
                    .toList());
            events.publish(units.getLast().delivery().channel(), result.events());
            applied.addAndGet(result.appliedNow());
            duplicates.addAndGet(result.duplicates());
            if (ack) {
                ackAll(units);
            }
            return true;
        }
        return true;
    }

    /** Acks, on each partition channel of the batch, everything up to that channel's last delivery in it. */
    private void ackAll(List<Unit> units) {
        Map<Channel, Long> last = new IdentityHashMap<>();
        for (Unit u : units) {
            last.merge(u.delivery().channel(), u.delivery().tag(), Math::max);
        }
        last.forEach((channel, tag) -> {
            try {
                channel.basicAck(tag, true);
            } catch (IOException | RuntimeException e) {
                // the channel is gone: the broker redelivers, and the operation log recognises what was applied
                log.info("{}: could not ack up to {} ({}); redelivery will follow", name, tag, e.getMessage());
            }
        });
    }

    /** Dead-letters one delivery. */
    private void reject(Delivery d) {
        try {
            d.channel().basicReject(d.tag(), false);
        } catch (IOException | RuntimeException e) {
            log.info("{}: could not reject delivery {} ({}); it will be redelivered", name, d.tag(), e.getMessage());
        }
    }

    private void abandon(Channel channel) {
        try {
            if (channel.isOpen()) {
                channel.abort();
            }
        } catch (IOException | RuntimeException e) {
            log.debug("abort", e);
        }
    }
}
