package io.kvmesh.consumer.apply;

import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.Partitioner;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Brings the cache up to date after a commit, and holds the cache permits ({@link KvCache}) of the partitions this
 * consumer applies: it renews each one every quarter of the permit's lifetime while the partition's channel is
 * open. When an update does not reach Redis (down, slow or out of reach), applying goes on, but the update's
 * partitions are <em>tainted</em>: their permits are no longer renewed, only a new epoch (which starts empty) may be
 * granted, once Redis answers a PING again, and {@link #update} returns only when that happened or when every permit
 * this consumer, or the one that applied the partition before it, could have been granted has lapsed. Later updates
 * of a tainted partition whose permits have all lapsed are not even tried: nobody reads its cache. Nothing is kept
 * to be written later: a state that could not be written is simply never read from the cache.
 */
public final class CacheUpdater implements CacheSink, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CacheUpdater.class);
    /** Added to every wait for a permit to lapse: Redis's clock may run this much behind ours. */
    static final Duration CLOCK_MARGIN = Duration.ofMillis(100);

    private final KvCache cache;
    private final Partitioner partitioner;
    private final Clock clock;
    private final Duration waitLimit;
    private final Duration permitTtl;
    private final String holder = UUID.randomUUID().toString();
    private final Slot[] slots;
    private final ScheduledExecutorService renewer;
    private volatile boolean reportedDown;

    /** What this consumer knows of one partition's permit. Guarded by itself. */
    private static final class Slot {
        final int partition;
        /** The channel the partition is applied from; null when this consumer does not apply it. */
        PartitionChannel channel;
        /** When this consumer started applying it from that channel (epoch millis). */
        long appliedSince;
        /** The latest deadline of any grant sent for it (epoch millis). */
        long latestDeadline;
        /** How many updates of its keys failed, and up to which of those failures a new epoch has been granted. */
        long failures;
        long freshAfter;
        /** Whether a grant was taken in the last lifetime (for the gauge). */
        long grantedUntil;

        Slot(int partition) {
            this.partition = partition;
        }

        boolean tainted() {
            return freshAfter < failures;
        }
    }

    /**
     * @param waitLimit how long one Redis call may take before it counts as failed
     * @param permitTtl the lifetime of a permit; renewed every quarter of it
     */
    public CacheUpdater(KvCache cache, Partitioner partitioner, Clock clock, Duration waitLimit, Duration permitTtl) {
        if (permitTtl.compareTo(waitLimit.multipliedBy(2)) < 0) {
            throw new IllegalArgumentException("the cache permit must live at least twice the Redis wait limit ("
                    + waitLimit.toMillis() + " ms), not " + permitTtl.toMillis() + " ms");
        }
        this.cache = cache;
        this.partitioner = partitioner;
        this.clock = clock;
        this.waitLimit = waitLimit;
        this.permitTtl = permitTtl;
        this.slots = new Slot[partitioner.partitions()];
        for (int p = 0; p < slots.length; p++) {
            slots[p] = new Slot(p);
        }
        this.renewer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-cache-permits").daemon(true).factory());
    }

    /** Starts renewing the permits of the partitions this consumer applies. */
    public void start() {
        long every = Math.max(1, permitTtl.toMillis() / 4);
        renewer.scheduleWithFixedDelay(this::renewAll, every, every, TimeUnit.MILLISECONDS);
    }

    @Override
    public void applying(PartitionChannel channel) {
        Slot slot = slots[channel.partition()];
        boolean first;
        synchronized (slot) {
            first = slot.channel != channel;
            if (first) {
                slot.channel = channel;
                slot.appliedSince = clock.millis();
            }
        }
        if (first) {
            renewSoon(slot);
        }
    }

    @Override
    public void update(Collection<Entry> states) throws InterruptedException {
        if (states.isEmpty()) {
            return;
        }
        TreeSet<Integer> partitions = new TreeSet<>();
        states.forEach(e -> partitions.add(partitioner.partitionOf(e.key())));
        if (partitions.stream().allMatch(p -> lapsed(slots[p])) || write(states)) {
            return;
        }
        // Not written: an older state of these keys may still be in the cache, or be put there by a reader whose
        // PostgreSQL read began before the commit. Nobody may read it once the writes are acknowledged.
        for (int p : partitions) {
            awaitUntrusted(slots[p]);
        }
    }

    /** The expiry sweep's update: an expired entry is already hidden from readers, so a failure is harmless. */
    public void updateIfReachable(Collection<Entry> states) {
        if (!states.isEmpty()) {
            write(states);
        }
    }

    /** Partitions whose permit this consumer holds now. */
    public int permitsHeld() {
        long now = clock.millis();
        int n = 0;
        for (Slot slot : slots) {
            synchronized (slot) {
                n += slot.grantedUntil > now ? 1 : 0;
            }
        }
        return n;
    }

    /** Partitions whose keys' updates failed and whose cache is not used until a new epoch is granted. */
    public int partitionsTainted() {
        int n = 0;
        for (Slot slot : slots) {
            synchronized (slot) {
                n += slot.tainted() ? 1 : 0;
            }
        }
        return n;
    }

    private boolean write(Collection<Entry> states) {
        Instant now = clock.instant();
        try {
            boolean inTime = cache.write(List.copyOf(states), now, now.plus(waitLimit))
                    .get(waitLimit.toMillis(), TimeUnit.MILLISECONDS);
            if (inTime && reportedDown) {
                reportedDown = false;
                log.info("Redis takes cache updates again");
            }
            return inTime;
        } catch (ExecutionException | TimeoutException e) {
            if (!reportedDown) {
                reportedDown = true;
                log.warn("Redis did not take a cache update ({}); applying goes on, and the partitions concerned are "
                        + "read from PostgreSQL until a new cache permit is granted", e.toString());
            }
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** The latest time a permit under which the partition's cache could be read may be in force, as known now. */
    private long untrustedFrom(Slot slot) {
        // the latest permit this consumer may have been granted, or (taken over recently) its predecessor's
        return Math.max(slot.latestDeadline, slot.appliedSince + permitTtl.toMillis()) + CLOCK_MARGIN.toMillis();
    }

    /**
     * Whether an update failed and since then no permit of the partition can be in force: nobody reads its cache,
     * its next epoch starts empty, and there is nothing to write (so a Redis out of reach costs no wait per batch).
     */
    private boolean lapsed(Slot slot) {
        synchronized (slot) {
            return slot.tainted() && clock.millis() >= untrustedFrom(slot);
        }
    }

    /** Taints the partition and waits until no permit under which its cache could be read is in force. */
    private void awaitUntrusted(Slot slot) throws InterruptedException {
        synchronized (slot) {
            long failure = ++slot.failures;
            long until = untrustedFrom(slot);
            renewSoon(slot); // a new epoch at once, if Redis takes it
            long left;
            while (slot.freshAfter < failure && (left = until - clock.millis()) > 0) {
                slot.wait(left);
            }
        }
    }

    private void renewSoon(Slot slot) {
        try {
            renewer.execute(() -> renew(slot));
        } catch (RejectedExecutionException e) {
            // closing: no permit is renewed any more
        }
    }

    private void renewAll() {
        for (Slot slot : slots) {
            renew(slot);
        }
    }

    /** On the renewer thread: renews (or, when tainted, starts anew) the permit of a partition this consumer applies. */
    private void renew(Slot slot) {
        boolean fresh;
        long failures;
        Instant deadline = clock.instant().plus(permitTtl);
        synchronized (slot) {
            if (slot.channel == null) {
                return;
            }
            if (!slot.channel.isOpen()) {
                slot.channel = null; // the broker hands the partition to another consumer: let the permit lapse
                return;
            }
            fresh = slot.tainted();
            failures = slot.failures;
            if (!fresh) {
                slot.latestDeadline = Math.max(slot.latestDeadline, deadline.toEpochMilli());
            }
        }
        Optional<String> epoch;
        try {
            if (fresh) {
                // a grant that gets no answer may still be in force until its deadline and so delays the next
                // acknowledgements of a tainted partition: ask for one only once Redis answers again
                cache.ping().get(waitLimit.toMillis(), TimeUnit.MILLISECONDS);
                deadline = clock.instant().plus(permitTtl);
                synchronized (slot) {
                    slot.latestDeadline = Math.max(slot.latestDeadline, deadline.toEpochMilli());
                }
            }
            epoch = cache.grant(slot.partition, holder, deadline, fresh)
                    .get(waitLimit.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            return; // Redis unreachable: the permit lapses, which is what must happen
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        synchronized (slot) {
            if (epoch.isEmpty()) {
                return; // another consumer's permit is still in force (it applied the partition until lately)
            }
            slot.grantedUntil = deadline.toEpochMilli();
            if (fresh && failures > slot.freshAfter) {
                slot.freshAfter = failures;
                log.info("partition {}: cache permit granted under a new epoch {}", slot.partition, epoch.get());
                slot.notifyAll();
            }
        }
    }

    @Override
    public void close() {
        renewer.shutdownNow();
    }
}
