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
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Applies one partition's deliveries in queue order: takes what has arrived (up to the batch size), applies it in one
 * transaction, updates the cache, publishes the change events, then acknowledges. While PostgreSQL is down it holds the batch and retries with
 * back-off (no ack, no requeue, so nothing is dead-lettered by an outage). Deliveries whose channel closed are
 * dropped unapplied: the broker redelivers them, to this consumer or to the one that takes the partition over.
 */
public final class PartitionWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(PartitionWorker.class);

    private final int partition;
    private final BatchApplier applier;
    private final CacheUpdater cacheUpdater;
    private final EventPublisher events;
    private final AfterCommit afterCommit;
    private final Clock clock;
    private final int batchSize;
    private final Duration backoffMax;
    private final BlockingQueue<Delivery> inbox = new LinkedBlockingQueue<>();
    private final AtomicLong applied = new AtomicLong();
    private final AtomicLong duplicates = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();
    private volatile boolean running = true;

    public PartitionWorker(int partition, BatchApplier applier, CacheUpdater cacheUpdater, EventPublisher events,
                           AfterCommit afterCommit, Clock clock, int batchSize, Duration backoffMax) {
        this.partition = partition;
        this.applier = applier;
        this.cacheUpdater = cacheUpdater;
        this.events = events;
        this.afterCommit = afterCommit;
        this.clock = clock;
        this.batchSize = batchSize;
        this.backoffMax = backoffMax;
    }

    /** Called on the channel's dispatch thread for each delivery, in queue order. */
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
        List<Delivery> batch = new ArrayList<>(batchSize);
        while (running) {
            try {
                Delivery first = inbox.poll(200, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                inbox.drainTo(batch, batchSize - 1);
                process(batch);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                log.error("partition {}: unexpected failure; its deliveries will be redelivered", partition, e);
                batch.forEach(d -> abandon(d.channel()));
            } finally {
                batch.clear();
            }
        }
    }

    private void process(List<Delivery> batch) throws InterruptedException {
        batch.removeIf(d -> !d.channel().isOpen());
        List<Delivery> good = new ArrayList<>(batch.size());
        List<Operation> ops = new ArrayList<>(batch.size());
        for (Delivery d : batch) {
            try {
                ops.add(OperationCodec.decode(d.body()));
                good.add(d);
            } catch (InvalidProtocolBufferException e) {
                log.error("partition {}: undecodable message dead-lettered: {}", partition, e.getMessage());
                settle(d, false);
            }
        }
        if (good.isEmpty()) {
            return;
        }
        if (!applyWithRetry(good, ops)) {
            // a non-transient failure: find the operation that cannot apply by applying one at a time
            for (int i = 0; i < good.size(); i++) {
                if (!applyWithRetry(good.subList(i, i + 1), ops.subList(i, i + 1))) {
                    log.error("partition {}: operation {} on key {} can never apply; dead-lettered", partition,
                            ops.get(i).getId(), ops.get(i).getKey());
                    settle(good.get(i), false);
                }
            }
        }
    }

    /** True when applied and acknowledged (or abandoned to redelivery); false on a non-transient failure. */
    private boolean applyWithRetry(List<Delivery> deliveries, List<Operation> ops) throws InterruptedException {
        long backoff = 50;
        while (running) {
            if (!deliveries.getLast().channel().isOpen()) {
                return true; // the broker will redeliver these
            }
            ApplyResult result;
            try {
                // millisecond precision: what PostgreSQL and the cache hold must read back the same
                result = applier.apply(ops, clock.instant().truncatedTo(ChronoUnit.MILLIS));
            } catch (RuntimeException e) {
                if (!KvStore.isTransient(e)) {
                    log.warn("partition {}: batch of {} failed: {}", partition, ops.size(), e.toString());
                    return false;
                }
                retries.incrementAndGet();
                log.warn("partition {}: database unavailable, retrying in {} ms: {}", partition, backoff, e.getMessage());
                Thread.sleep(backoff);
                backoff = Math.min(backoff * 2, backoffMax.toMillis());
                continue;
            }
            afterCommit.committed(partition, ops);
            cacheUpdater.update(result.changed());
            cacheUpdater.clearPending(ops.stream().map(Operation::getId).toList());
            events.publish(deliveries.getLast().channel(), result.events());
            applied.addAndGet(result.appliedNow());
            duplicates.addAndGet(result.duplicates());
            settle(deliveries.getLast(), true);
            return true;
        }
        return true;
    }

    /** Acks everything up to and including {@code d} on its channel, or dead-letters {@code d} alone. */
    private void settle(Delivery d, boolean ack) {
        try {
            if (ack) {
                d.channel().basicAck(d.tag(), true);
            } else {
                d.channel().basicReject(d.tag(), false);
            }
        } catch (IOException | RuntimeException e) {
            // the channel is gone: the broker redelivers, and the operation log recognises what was applied
            log.info("partition {}: could not settle delivery {} ({}); it will be redelivered", partition, d.tag(),
                    e.getMessage());
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
