package io.kvmesh.core.cache;

import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.retry.Backoff;
import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisConnectionException;
import io.lettuce.core.RedisNoScriptException;
import io.lettuce.core.RedisURI;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.SocketOptions;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.resource.ClientResources;
import io.lettuce.core.resource.DefaultClientResources;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The Redis read cache. Every entry carries its version, and {@link #put} never replaces a newer version with an
 * older one (a Lua script compares them atomically), so a slow reader's fill cannot undo an applied write.
 * <p>
 * Entries live in a namespace named after the Redis process that holds them (its {@code run_id}): a Redis that
 * restarts, whether empty, from a dump or from an append-only file, is a new process, so everything cached before
 * the restart is out of sight at once and reads fill again from PostgreSQL. This is what makes "never older than
 * what was applied" hold across a crash: a dump may hold any older state, and nothing in it can be told fresh.
 * The connection is ours, not Lettuce's auto-reconnect: a TCP connection cannot outlive the server process, so the
 * run id read on a connection is valid for every command sent on it, with no window in which a reconnected client
 * still uses the old namespace. Commands fail fast while Redis is unreachable (callers fall back to PostgreSQL).
 */
public final class KvCache implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvCache.class);
    private static final long CHECK_MILLIS = 100;
    private static final Backoff RECONNECT_BACKOFF = Backoff.of(CHECK_MILLIS, 1_000);

    /**
     * For each i: sets KEYS[i] to ARGV[3i-1] with PX ARGV[3i] unless the cached version is already >= ARGV[3i-2];
     * returns 1 or 0 for each key. One call writes a whole applied batch.
     */
    static final String GUARDED_SET = """
            local written = {}
            for i = 1, #KEYS do
              local base = (i - 1) * 3
              local cur = redis.call('GET', KEYS[i])
              local newer = false
              if cur then
                local bar = string.find(cur, '|', 1, true)
                newer = bar and tonumber(string.sub(cur, 1, bar - 1)) >= tonumber(ARGV[base + 1])
              end
              if newer then
                written[i] = 0
              else
                redis.call('SET', KEYS[i], ARGV[base + 2], 'PX', ARGV[base + 3])
                written[i] = 1
              end
            end
            return written
            """;

    /** One connection to one Redis process, and the key prefix of that process's entries. */
    private record Session(StatefulRedisConnection<String, String> connection, RedisAsyncCommands<String, String> redis,
                           String entryPrefix, String runId) {
        boolean usable() {
            return connection.isOpen();
        }
    }

    private final RedisConfig config;
    private final ClientResources resources;
    private final RedisClient client;
    private final String scriptSha;
    private final ScheduledExecutorService keeper;
    private volatile Session session;
    private final Backoff.Delays reconnectBackoff = RECONNECT_BACKOFF.delays();
    private long nextAttemptNanos;
    private boolean reportedDown;

    public KvCache(RedisConfig config) {
        this.config = config;
        this.resources = DefaultClientResources.builder().build();
        this.client = RedisClient.create(resources, RedisURI.create(config.uri()));
        client.setOptions(ClientOptions.builder()
                .autoReconnect(false)
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .socketOptions(SocketOptions.builder().connectTimeout(Duration.ofSeconds(2)).keepAlive(true).build())
                .timeoutOptions(TimeoutOptions.enabled(config.timeout()))
                .build());
        this.scriptSha = sha1(GUARDED_SET);
        this.keeper = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("kv-redis-connect").daemon(true).factory());
        try {
            keeper.submit(this::ensureConnected).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
        keeper.scheduleWithFixedDelay(this::ensureConnected, CHECK_MILLIS, CHECK_MILLIS, TimeUnit.MILLISECONDS);
    }

    /** On the keeper thread: opens a new connection (and so a new namespace) whenever the current one closed. */
    private void ensureConnected() {
        Session s = session;
        if (s != null && s.usable()) {
            return;
        }
        long now = System.nanoTime();
        if (now < nextAttemptNanos) {
            return;
        }
        try {
            session = open();
            if (s != null) {
                s.connection().closeAsync();
            }
            reconnectBackoff.reset();
            if (reportedDown || s != null) {
                log.info("connected to Redis (run {}); entries cached by an earlier Redis process are not used",
                        session.runId());
            }
            reportedDown = false;
        } catch (RuntimeException e) {
            if (!reportedDown) {
                log.warn("Redis unavailable ({}); reads use PostgreSQL until it is back", e.toString());
                reportedDown = true;
            }
            nextAttemptNanos = now + reconnectBackoff.next().toNanos();
        }
    }

    private Session open() {
        StatefulRedisConnection<String, String> c = client.connect(StringCodec.UTF8);
        try {
            String runId = runIdOf(c.sync().info("server"));
            String generation = runId.length() > 12 ? runId.substring(0, 12) : runId;
            return new Session(c, c.async(), config.keyPrefix() + "v:" + generation + ":", runId);
        } catch (RuntimeException e) {
            c.closeAsync();
            throw e;
        }
    }

    static String runIdOf(String info) {
        for (String line : info.split("\r?\n")) {
            if (line.startsWith("run_id:")) {
                return line.substring("run_id:".length()).trim();
            }
        }
        throw new IllegalStateException("Redis did not report its run_id");
    }

    private Session current() {
        Session s = session;
        if (s == null || !s.usable()) {
            throw new RedisConnectionException("Redis is not connected");
        }
        return s;
    }

    /** The cached state of a key: empty on a miss; a tombstone (no value) means "known not to exist". */
    public CompletableFuture<Optional<Entry>> get(String key) {
        return call(s -> s.redis().get(s.entryPrefix() + key).toCompletableFuture()
                .orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS)
                .thenApply(v -> v == null ? Optional.<Entry>empty() : Optional.of(CacheCodec.decode(key, v))));
    }

    /**
     * Caches {@code entry} unless a newer version is cached; completes with whether it was written.
     * Live entries live at most the configured TTL and never past their own expiry; tombstones live the
     * tombstone TTL.
     */
    public CompletableFuture<Boolean> put(Entry entry, Instant now) {
        return putAll(List.of(entry), now).thenApply(List::getFirst);
    }

    /** {@link #put} of several entries (of different keys) in one call; completes with whether each was written. */
    public CompletableFuture<List<Boolean>> putAll(List<Entry> entries, Instant now) {
        Session s;
        try {
            s = current();
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        String[] keys = new String[entries.size()];
        String[] args = new String[entries.size() * 3];
        for (int i = 0; i < entries.size(); i++) {
            Entry entry = entries.get(i);
            Entry toCache = entry;
            long ttl;
            if (entry.value() == null) {
                ttl = config.tombstoneTtl().toMillis();
            } else if (entry.expireTime() != null) {
                ttl = Math.min(config.entryTtl().toMillis(), Duration.between(now, entry.expireTime()).toMillis());
                if (ttl <= 0) {
                    toCache = new Entry(entry.key(), null, entry.version(), null, null, null);
                    ttl = config.tombstoneTtl().toMillis();
                }
            } else {
                ttl = config.entryTtl().toMillis();
            }
            keys[i] = s.entryPrefix() + entry.key();
            args[3 * i] = Long.toString(entry.version());
            args[3 * i + 1] = CacheCodec.encode(toCache);
            args[3 * i + 2] = Long.toString(Math.max(1, ttl));
        }
        RedisAsyncCommands<String, String> redis = s.redis();
        CompletableFuture<List<Long>> written = redis.<List<Long>>evalsha(scriptSha, ScriptOutputType.MULTI, keys, args)
                .toCompletableFuture()
                .exceptionallyCompose(e -> unwrap(e) instanceof RedisNoScriptException
                        ? redis.<List<Long>>eval(GUARDED_SET, ScriptOutputType.MULTI, keys, args).toCompletableFuture()
                        : CompletableFuture.failedFuture(e));
        return written.orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS)
                .thenApply(ns -> ns.stream().map(n -> n == 1L).toList());
    }

    /** Removes a key from the cache whatever its version (tests and operators; the write path never needs it). */
    public CompletableFuture<Long> evict(String key) {
        return call(s -> s.redis().del(s.entryPrefix() + key).toCompletableFuture());
    }

    private <T> CompletableFuture<T> call(java.util.function.Function<Session, CompletableFuture<T>> command) {
        try {
            return command.apply(current());
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    private static Throwable unwrap(Throwable e) {
        return e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
    }

    private static String sha1(String script) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-1").digest(script.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        keeper.shutdownNow();
        Session s = session;
        if (s != null) {
            s.connection().close();
        }
        client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        resources.shutdown(0, 2, TimeUnit.SECONDS);
    }
}
