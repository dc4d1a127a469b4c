package io.kvmesh.consumer.apply;

import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.consumer.metrics.ConsumerMetrics.DeadLetterReason;
import io.kvmesh.core.retry.Backoff;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * One applier thread for a group of partitions: takes a batch from its {@link Inbox} (what has arrived from every
 * partition of the group, up to the batch size), commits it in one transaction ({@link BatchCommitter}), and when
 * that fails for good lets {@link PoisonIsolation} find and dead-letter what cannot apply. Partitions never share a
 * key and the inbox keeps each partition's order, so per-key order holds while one transaction's fixed cost is
 * shared by all the partitions that had work.
 */
public final class ApplyWorker implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(ApplyWorker.class);
    private static final Duration POLL = Duration.ofMillis(200);

    private final String name;
    private final Inbox inbox;
    private final BatchCommitter committer;
    private final PoisonIsolation isolation;
    private final ConsumerMetrics metrics;
    private volatile boolean running = true;

    public ApplyWorker(String name, Applier applier, CacheSink cache, DeadLetterSink deadLetters,
                       AfterCommit afterCommit, Clock clock, int batchSize, Backoff backoff, ConsumerMetrics metrics) {
        this.name = name;
        this.inbox = new Inbox(batchSize);
        this.committer = new BatchCommitter(name, applier, cache, afterCommit, clock, backoff, metrics,
                () -> running);
        this.isolation = new PoisonIsolation(name, committer, deadLetters, metrics);
        this.metrics = metrics;
    }

    public String name() {
        return name;
    }

    /** Called on a partition channel's dispatch thread for each delivery, in queue order. */
    public void offer(Delivery delivery) {
        inbox.offer(delivery);
    }

    /** Deliveries received and not yet taken into a batch. */
    public int waiting() {
        return inbox.size();
    }

    public void stop() {
        running = false;
    }

    @Override
    public void run() {
        while (running) {
            try {
                runOnce(POLL);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** One pass: one batch, if one arrives within {@code wait} (unit tests drive the worker with it). */
    void runOnce(Duration wait) throws InterruptedException {
        List<DecodedDelivery> batch = inbox.nextBatch(wait, this::undecodable);
        if (batch.isEmpty()) {
            return;
        }
        try {
            if (!committer.commit(batch, true)) {
                isolation.isolate(batch);
            }
        } catch (RuntimeException e) {
            log.error("{}: unexpected failure; the batch will be redelivered", name, e);
            metrics.abandoned();
            batch.forEach(u -> Acks.abandon(u.channel()));
        }
    }

    private void undecodable(Delivery d, Exception e) {
        log.error("{}: undecodable message dead-lettered: {}", name, e.getMessage());
        Acks.reject(d);
        metrics.deadLettered(DeadLetterReason.UNDECODABLE);
    }
}
