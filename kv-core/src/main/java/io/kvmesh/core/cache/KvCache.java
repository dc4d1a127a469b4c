package io.kvmesh.core.cache;

import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.model.Entry;
import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisClient;
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
import io.lettuce.core.resource.Delay;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;

/**
 * The Redis read cache. Every entry carries its version, and {@link #put} never replaces a newer version with an
 * older one (a Lua script compares them atomically), so a slow reader's fill cannot undo an applied write.
 * One connection, shared by all callers; commands fail fast while Redis is unreachable.
 */
public final class KvCache implements AutoCloseable {
    /** Sets KEYS[1] to ARGV[2] with PX ARGV[3] unless the cached version is already >= ARGV[1]. */
    static final String GUARDED_SET = """
            local cur = redis.call('GET', KEYS[1])
            if cur then
              local bar = string.find(cur, '|', 1, true)
              if bar and tonumber(string.sub(cur, 1, bar - 1)) >= tonumber(ARGV[1]) then
                return 0
              end
            end
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
            """;

    private final RedisConfig config;
    private final ClientResources resources;
    private final RedisClient client;
    private final StatefulRedisConnection<String, String> connection;
    private final RedisAsyncCommands<String, String> redis;
    private final String scriptSha;

    public KvCache(RedisConfig config) {
        this.config = config;
        this.resources = DefaultClientResources.builder()
                .reconnectDelay(Delay.exponential(Duration.ofMillis(20), Duration.ofSeconds(1), 2, TimeUnit.MILLISECONDS))
                .build();
        this.client = RedisClient.create(resources, RedisURI.create(config.uri()));
        client.setOptions(ClientOptions.builder()
                .autoReconnect(true)
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .socketOptions(SocketOptions.builder().connectTimeout(Duration.ofSeconds(2)).keepAlive(true).build())
                .timeoutOptions(TimeoutOptions.enabled(config.timeout()))
                .build());
        this.connection = connectWithRetry(client);
        this.redis = connection.async();
        this.scriptSha = sha1(GUARDED_SET);
    }

    /** Connects; if Redis is down at start-up, keeps trying in the background (reads fall back meanwhile). */
    private static StatefulRedisConnection<String, String> connectWithRetry(RedisClient client) {
        // Lettuce reconnects an established connection by itself; the first connect must succeed once.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        RuntimeException last = null;
        while (System.nanoTime() < deadline) {
            try {
                return client.connect(StringCodec.UTF8);
            } catch (RuntimeException e) {
                last = e;
                try {
                    Thread.sleep(500);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        throw new IllegalStateException("Redis not reachable at start-up: " + (last == null ? "" : last.getMessage()), last);
    }

    /** The cached state of a key: empty on a miss; a tombstone (no value) means "known not to exist". */
    public CompletableFuture<Optional<Entry>> get(String key) {
        return redis.get(entryKey(key)).toCompletableFuture()
                .orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS)
                .thenApply(s -> s == null ? Optional.<Entry>empty() : Optional.of(CacheCodec.decode(key, s)));
    }

    /**
     * Caches {@code entry} unless a newer version is cached; completes with whether it was written.
     * Live entries live at most the configured TTL and never past their own expiry; tombstones live the
     * tombstone TTL.
     */
    public CompletableFuture<Boolean> put(Entry entry, Instant now) {
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
        String[] keys = {entryKey(entry.key())};
        String encoded = CacheCodec.encode(toCache);
        String version = Long.toString(entry.version());
        String px = Long.toString(Math.max(1, ttl));
        CompletableFuture<Long> written = redis.<Long>evalsha(scriptSha, ScriptOutputType.INTEGER, keys, version, encoded, px)
                .toCompletableFuture()
                .exceptionallyCompose(e -> unwrap(e) instanceof RedisNoScriptException
                        ? redis.<Long>eval(GUARDED_SET, ScriptOutputType.INTEGER, keys, version, encoded, px).toCompletableFuture()
                        : CompletableFuture.failedFuture(e));
        return written.orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS).thenApply(n -> n == 1L);
    }

    /** Removes a key from the cache whatever its version (tests and operators; the write path never needs it). */
    public CompletableFuture<Long> evict(String key) {
        return redis.del(entryKey(key)).toCompletableFuture();
    }

    /** Notes that an operation was accepted and is not applied yet (for operation status lookups). */
    public CompletableFuture<String> markPending(String operationId, Duration ttl) {
        return redis.psetex(pendingKey(operationId), ttl.toMillis(), "1").toCompletableFuture();
    }

    /** Whether an operation is marked accepted-but-not-applied. */
    public CompletableFuture<Boolean> isPending(String operationId) {
        return redis.exists(pendingKey(operationId)).toCompletableFuture()
                .orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS).thenApply(n -> n > 0);
    }

    /** Removes the pending marks of applied operations (best effort: the marks expire anyway). */
    public CompletableFuture<Long> clearPending(java.util.Collection<String> operationIds) {
        if (operationIds.isEmpty()) {
            return CompletableFuture.completedFuture(0L);
        }
        return redis.del(operationIds.stream().map(this::pendingKey).toArray(String[]::new)).toCompletableFuture();
    }

    /** Entries live under {@code <prefix>v:<key>}, pending marks under {@code <prefix>o:<id>}: they never collide. */
    private String entryKey(String key) {
        return config.keyPrefix() + "v:" + key;
    }

    private String pendingKey(String operationId) {
        return config.keyPrefix() + "o:" + operationId;
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
        connection.close();
        client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        resources.shutdown(0, 2, TimeUnit.SECONDS);
    }
}
