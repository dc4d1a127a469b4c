package io.kvmesh.consumer.apply;

import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.model.Entry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Brings the cache up to date after a commit. A cache outage never stops applying: states that could not be written
 * are kept (newest version per key) in a backlog that is retried until Redis takes them. Writes are version-guarded,
 * so retries and their order cannot put an older state over a newer one.
 */
public final class CacheUpdater implements CacheSink, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CacheUpdater.class);

    private final KvCache cache;
    private final Clock clock;
    private final Duration waitLimit;
    private final Duration retryEvery;
    private final Map<String, Entry> backlog = new ConcurrentHashMap<>();
    private final ScheduledExecutorService retrier;

    public CacheUpdater(KvCache cache, Clock clock, Duration waitLimit, Duration retryEvery) {
        this.cache = cache;
        this.clock = clock;
        this.waitLimit = waitLimit;
        this.retryEvery = retryEvery;
        this.retrier = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-cache-retry").daemon(true).factory());
    }

    /** Starts retrying the backlog every {@code retryEvery}. */
    public void start() {
        retrier.scheduleWithFixedDelay(this::retryBacklog, retryEvery.toMillis(), retryEvery.toMillis(),
                TimeUnit.MILLISECONDS);
    }

    /** Writes the states to the cache in one call, waiting a bounded time; if that fails they go to the backlog. */
    @Override
    public void update(Collection<Entry> states) {
        if (states.isEmpty()) {
            return;
        }
        List<Entry> order = List.copyOf(states);
        try {
            cache.putAll(order, clock.instant()).get(waitLimit.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            order.forEach(this::remember);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            order.forEach(this::remember);
        }
    }

    /** How many keys wait for the cache to come back. */
    public int backlogSize() {
        return backlog.size();
    }

    private void remember(Entry e) {
        if (backlog.isEmpty()) {
            log.warn("Redis unavailable: cache updates are kept and retried (applying goes on)");
        }
        backlog.merge(e.key(), e, (old, neu) -> neu.version() >= old.version() ? neu : old);
    }

    private void retryBacklog() {
        if (backlog.isEmpty()) {
            return;
        }
        int before = backlog.size();
        for (Entry e : List.copyOf(backlog.values())) {
            try {
                cache.put(e, clock.instant()).get(waitLimit.toMillis(), TimeUnit.MILLISECONDS);
                backlog.remove(e.key(), e);
            } catch (ExecutionException | TimeoutException ex) {
                return; // still down; try again on the next tick
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException ex) {
                log.warn("cache retry failed", ex);
                return;
            }
        }
        log.info("Redis is back: {} delayed cache updates written", before);
    }

    @Override
    public void close() {
        retrier.shutdownNow();
    }
}
