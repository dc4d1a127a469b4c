package io.kvmesh.consumer.apply;

import com.rabbitmq.client.Channel;
import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.store.Change;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.queue.v1.ChangeEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Turns entries whose TTL has passed into tombstones (version + 1, an EXPIRE record and event), and forgets operation
 * log rows past their retention. Reads already hide an expired entry the moment it expires; this makes the expiry a
 * change that watchers see and the cache drops. Rows an applier holds are skipped, so it never reorders a key's
 * writes, and several consumers may sweep at once.
 */
public final class ExpirySweeper implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(ExpirySweeper.class);
    private static final int BATCH = 500;

    private final KvStore store;
    private final CacheUpdater cacheUpdater;
    private final EventPublisher events;
    private final Supplier<Channel> channel;
    private final Clock clock;
    private static final int FORGET_BATCH = 10_000;
    private static final Duration FORGET_BUDGET = Duration.ofSeconds(5);
    private final Duration oplogRetention;
    private final ConsumerMetrics metrics;

    public ExpirySweeper(KvStore store, CacheUpdater cacheUpdater, EventPublisher events, Supplier<Channel> channel,
                         Clock clock, Duration oplogRetention, ConsumerMetrics metrics) {
        this.store = store;
        this.cacheUpdater = cacheUpdater;
        this.events = events;
        this.channel = channel;
        this.clock = clock;
        this.oplogRetention = oplogRetention;
        this.metrics = metrics;
    }

    @Override
    public void run() {
        try {
            int expired;
            do {
                expired = sweepOnce();
            } while (expired == BATCH);
            Instant before = clock.instant().minus(oplogRetention);
            // batches of FORGET_BATCH rows, each its own short transaction, until none is left or FORGET_BUDGET has
            // passed: one batch a sweep (10,000 rows a second) fell behind a sustained write rate above that
            long until = System.nanoTime() + FORGET_BUDGET.toNanos();
            int forgotten = 0;
            int ids = 0;
            int n;
            do {
                n = store.inTransaction(dao -> dao.deleteOplogBefore(before, FORGET_BATCH));
                forgotten += n;
            } while (n == FORGET_BATCH && System.nanoTime() < until);
            do {
                n = store.inTransaction(dao -> dao.deleteRequestIdsBefore(before, FORGET_BATCH));
                ids += n;
            } while (n == FORGET_BATCH && System.nanoTime() < until);
            if (forgotten > 0 || ids > 0) {
                log.info("forgot {} operation log rows and {} request ids older than {}", forgotten, ids,
                        oplogRetention);
            }
        } catch (RuntimeException e) {
            log.warn("expiry sweep failed, retrying on the next tick: {}", e.toString());
        }
    }

    /** Expires up to one batch; returns how many entries it expired. */
    int sweepOnce() {
        Instant now = clock.instant().truncatedTo(ChronoUnit.MILLIS);
        List<Change> tombstones = new ArrayList<>();
        List<ChangeEvent> changes = new ArrayList<>();
        store.inApplyTransaction(tx -> {
            List<Entry> expired = tx.lockExpired(now, BATCH);
            if (expired.isEmpty()) {
                return 0;
            }
            List<OplogRow> rows = new ArrayList<>(expired.size());
            for (Entry e : expired) {
                Entry tomb = new Entry(e.key(), null, e.version() + 1, e.createTime(), now, null);
                String id = OperationCodec.expiryId(e.key(), tomb.version());
                tombstones.add(new Change(tomb, id, OperationKind.EXPIRE));
                rows.add(new OplogRow(id, e.key(), OperationKind.EXPIRE, tomb.version(), OperationOutcome.APPLIED, null, null,
                        null, e.expireTime(), now));
                changes.add(Events.changed(id, ChangeEvent.Kind.EXPIRE, tomb, now));
            }
            tx.write(tombstones, rows);
            return expired.size();
        });
        if (tombstones.isEmpty()) {
            return 0;
        }
        metrics.expired(tombstones.size());
        cacheUpdater.updateIfReachable(tombstones.stream().map(Change::entry).toList());
        Channel ch = channel.get();
        if (ch != null && ch.isOpen() && events.publish(ch, changes)) {
            metrics.eventsPublished(changes.size());
        } else {
            metrics.eventsFailed(changes.size());
        }
        return tombstones.size();
    }
}
