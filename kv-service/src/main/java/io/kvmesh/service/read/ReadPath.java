package io.kvmesh.service.read;

import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.store.ChangeRow;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.service.metrics.ServiceMeters;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Reads: Redis first; on a miss (or when Redis does not answer in time, or its partition has no cache permit in force)
 * PostgreSQL, then a version-guarded cache fill under the permit the miss was read under ({@link KvCache}).
 * Database calls run on their own executor, never on the caller's thread.
 */
public final class ReadPath {
    private static final Logger log = LoggerFactory.getLogger(ReadPath.class);

    private final KvCache cache;
    private final KvStore store;
    private final Executor dbExecutor;
    private final Clock clock;
    /** Bytes of values a List page may hold past its first entry. */
    private final long maxPageBytes;
    /** How long an accepted, unapplied operation is reported PENDING. */
    private final Duration pendingWindow;
    /** Replicas' clocks may differ this much: an id from a little in the future is still one of ours. */
    private static final long CLOCK_SKEW_MILLIS = 60_000;
    /** A catch-up page: few enough rows and bytes that a slow watcher holding one costs little memory. */
    private static final int CATCH_UP_PAGE_ROWS = 500;
    private static final long CATCH_UP_PAGE_BYTES = 1 << 20;

    private final AtomicLong cacheFailures = new AtomicLong();
    private final ServiceMeters meters;

    public ReadPath(KvCache cache, KvStore store, Executor dbExecutor, Clock clock, Duration pendingWindow,
                    long maxPageBytes, ServiceMeters meters) {
        this.cache = cache;
        this.store = store;
        this.dbExecutor = dbExecutor;
        this.clock = clock;
        this.pendingWindow = pendingWindow;
        this.maxPageBytes = maxPageBytes;
        this.meters = meters;
    }

    /** The live entry of {@code key}; fails with NOT_FOUND when there is none. */
    public CompletableFuture<ReadResult> get(String key) {
        return cache.get(key).handle((lookup, error) -> {
            if (error != null) {
                noteCacheFailure(error);
                return new KvCache.Lookup(Optional.empty(), null);
            }
            return lookup;
        }).thenCompose(lookup -> {
            if (lookup.entry().isPresent()) {
                meters.cacheRead(ReadResult.REDIS);
                return CompletableFuture.completedFuture(liveOrNotFound(lookup.entry().get(), ReadResult.REDIS));
            }
            return CompletableFuture.supplyAsync(() -> store.find(key), dbExecutor).thenApply(row -> {
                Entry entry = row.orElseGet(() -> Entry.absent(key));
                meters.cacheRead(ReadResult.POSTGRES);
                fill(entry, lookup);
                return liveOrNotFound(entry, ReadResult.POSTGRES);
            });
        });
    }

    /**
     * A page of live entries under {@code prefix}, after the key encoded in {@code pageToken}: at most
     * {@code pageSize} entries and, past its first entry, at most the page byte limit of values; the rest follows on
     * the next page.
     */
    public CompletableFuture<Page> list(String prefix, int pageSize, String pageToken) {
        String after = PageToken.decode(pageToken);
        return CompletableFuture.supplyAsync(() -> {
            // one row more than asked (or the row at which the byte limit is reached) tells that another page follows
            List<Entry> rows = store.list(prefix, after, pageSize + 1, maxPageBytes);
            List<Entry> page = new ArrayList<>(Math.min(rows.size(), pageSize));
            long bytes = 0;
            boolean more = false;
            for (Entry e : rows) {
                long size = utf8Length(e.value());
                if (page.size() == pageSize || !page.isEmpty() && bytes + size > maxPageBytes) {
                    more = true;
                    break;
                }
                page.add(e);
                bytes += size;
            }
            // a first entry larger than the limit alone: the store stopped after it, so more may follow
            more |= bytes > maxPageBytes;
            return new Page(List.copyOf(page), more ? PageToken.encode(page.getLast().key()) : "");
        }, dbExecutor);
    }

    private static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            n += c < 0x80 ? 1 : c < 0x800 ? 2 : Character.isSurrogate(c) ? 2 : 3;
        }
        return n;
    }

    /**
     * What became of an operation: from the operation log; else PENDING if its id is time-ordered and younger than
     * the pending window, or (an operation with a client request id) its request id was recorded; else NOT_FOUND.
     */
    public CompletableFuture<OperationView> operation(String id) {
        return CompletableFuture.supplyAsync(() -> {
            Optional<OplogRow> row = store.findOperation(id);
            if (row.isPresent()) {
                return OperationView.of(row.get());
            }
            OptionalLong accepted = OperationCodec.acceptMillis(id);
            boolean pending;
            if (accepted.isPresent()) {
                long age = clock.millis() - accepted.getAsLong();
                pending = age >= -CLOCK_SKEW_MILLIS && age <= pendingWindow.toMillis();
            } else {
                // an id derived from a client request id: its first use was recorded before the publish
                pending = store.requestIdRecorded(id);
            }
            if (!pending) {
                throw new KvException(KvError.NOT_FOUND, "operation not found: " + id
                        + " (unknown, or older than the operation log's retention)");
            }
            return OperationView.pending(id);
        }, dbExecutor);
    }

    /**
     * One page of a Watch catch-up: the current state of keys under {@code prefix} after {@code after} whose version
     * is at least {@code minVersion} (tombstones included), in key order; empty when there are no more.
     */
    public CompletableFuture<List<ChangeRow>> changedSince(String prefix, long minVersion, String after) {
        return CompletableFuture.supplyAsync(
                () -> store.changedSince(prefix, minVersion, after, CATCH_UP_PAGE_ROWS, CATCH_UP_PAGE_BYTES), dbExecutor);
    }

    private ReadResult liveOrNotFound(Entry entry, String source) {
        Instant now = clock.instant();
        if (!entry.isLiveAt(now)) {
            throw new KvException(KvError.NOT_FOUND, "key not found: " + entry.key());
        }
        return new ReadResult(entry, source);
    }

    /** Caches what PostgreSQL said, under the permit the miss was read under (none: the cache is not used now). */
    private void fill(Entry entry, KvCache.Lookup lookup) {
        if (!lookup.trusted()) {
            return;
        }
        cache.fill(entry, lookup, clock.instant()).whenComplete((written, error) -> {
            if (error != null) {
                noteCacheFailure(error);
            }
        });
    }

    private void noteCacheFailure(Throwable error) {
        meters.cacheError();
        long n = cacheFailures.incrementAndGet();
        if (n == 1 || n % 1000 == 0) {
            log.warn("Redis unavailable, reading from PostgreSQL ({} cache failures so far): {}", n, error.toString());
        }
    }
}
