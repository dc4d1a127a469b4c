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
 * Applies the deliveries of a group of partitions: takes what has arrived (up to the batch size, from every partition
 * of the group), applies it in one transaction, updates the cache, publishes the change events, then acknowledges
 * each partition's channel up to its last delivery. One FIFO inbox keeps every partition's deliveries in queue order,
 * and partitions never share a key, so per-key order holds while one transaction's fixed cost is shared by all the
 * partitions that had work. While PostgreSQL is down it holds the batch and retries with back-off (no ack, no requeue,
 * so an outage dead-letters nothing). Deliveries whose channel closed are dropped unapplied: the broker redelivers
 * them, to this consumer or to the one that takes the partition over.
 */
public final class ApplyWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(ApplyWorker.class);

    private final String name;
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

    public ApplyWorker(String name, BatchApplier applier, CacheUpdater cacheUpdater, EventPublisher events,
                       AfterCommit afterCommit, Clock clock, int batchSize, Duration backoffMax) {
        this.name = name;
        this.applier = applier;
        this.cacheUpdater = cacheUpdater;
        this.events = events;
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
                log.error("{}: unexpected failure; the batch will be redelivered", name, e);
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
                log.error("{}: undecodable message dead-lettered: {}", name, e.getMessage());
                reject(d);
            }
        }
        if (good.isEmpty()) {
            return;
        }
        if (!applyWithRetry(good, ops)) {
            // a non-transient failure: find the operation that cannot apply by applying one at a time
            for (int i = 0; i < good.size(); i++) {
                if (!applyWithRetry(good.subList(i, i + 1), ops.subList(i, i + 1))) {
                    log.error("{}: operation {} on key {} can never apply; dead-lettered", name,
                            ops.get(i).getId(), ops.get(i).getKey());
                    reject(good.get(i));
                }
            }
        }
    }

    /** True when applied and acknowledged (or abandoned to redelivery); false on a non-transient failure. */
    private boolean applyWithRetry(List<Delivery> deliveries, List<Operation> ops) throws InterruptedException {
        long backoff = 50;
        while (running) {
            if (deliveries.stream().anyMatch(d -> !d.channel().isOpen())) {
                // a partition's channel closed mid-batch: drop its deliveries (they are redelivered), keep the rest
                List<Delivery> keptDeliveries = new ArrayList<>();
                List<Operation> keptOps = new ArrayList<>();
                for (int i = 0; i < deliveries.size(); i++) {
                    if (deliveries.get(i).channel().isOpen()) {
                        keptDeliveries.add(deliveries.get(i));
                        keptOps.add(ops.get(i));
                    }
                }
                if (keptDeliveries.isEmpty()) {
                    return true;
                }
                deliveries = keptDeliveries;
                ops = keptOps;
            }
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
            cacheUpdater.clearPending(ops.stream().map(Operation::getId).toList());
            events.publish(deliveries.getLast().channel(), result.events());
            applied.addAndGet(result.appliedNow());
            duplicates.addAndGet(result.duplicates());
            ackAll(deliveries);
            return true;
        }
        return true;
    }

    /** Acks, on each partition channel of the batch, everything up to that channel's last delivery in it. */
    private void ackAll(List<Delivery> deliveries) {
        Map<Channel, Long> last = new IdentityHashMap<>();
        for (Delivery d : deliveries) {
            last.merge(d.channel(), d.tag(), Math::max);
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
