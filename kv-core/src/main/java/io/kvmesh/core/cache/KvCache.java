package io.kvmesh.core.cache;

import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.Partitioner;
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
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The Redis read cache, and the rule that keeps it from ever serving a state older than an acknowledged write.
 * <p>
 * <b>Namespaces.</b> Entries live in a namespace named after the Redis process that holds them (its {@code run_id}):
 * a Redis that restarts, whether empty, from a dump or from an append-only file, is a new process, so everything
 * cached before the restart is out of sight at once. The connection is ours, not Lettuce's auto-reconnect: a TCP
 * connection cannot outlive the server process, so the run id read on a connection is valid for every command sent
 * on it. Commands fail fast while Redis is unreachable (callers fall back to PostgreSQL).
 * <p>
 * <b>Permits.</b> The applier acknowledges a write after writing its new state here; when that write fails (Redis
 * down, slow or out of reach) the state cannot be written, and a reader whose PostgreSQL read began before the commit
 * could still put the older state here. So the cache of each partition is trusted only under a <em>permit</em>:
 * {@code {prefix}p:{run}:{partition}} holds {@code epoch:deadline:holder}, written by the consumer that applies the
 * partition ({@link #grant}) and renewed well before its deadline (epoch milliseconds), which Redis compares with its
 * own clock ({@code TIME}) inside every script. Entries carry the epoch they were written under, and
 * <ul>
 *   <li>a read is served from here only if the key's partition has a permit in force and the entry carries its epoch
 *       ({@link #get}: one MGET, the deadline read by the reader's clock);</li>
 *   <li>a reader's fill from PostgreSQL lands only under the epoch the reader saw before it read PostgreSQL, and only
 *       while that permit is in force ({@link #fill});</li>
 *   <li>an applier whose update failed stops renewing the permit and acknowledges only once the permit has lapsed or
 *       it has been granted a new epoch; a new epoch starts empty, so nothing written under an older one is read
 *       again;</li>
 *   <li>an update that reaches Redis after the applier gave up on it is dropped ({@link #write}), so it cannot land
 *       after the applier counted it lost.</li>
 * </ul>
 * Deadlines are the applier's clock read by Redis's clock (the scripts) and the readers' (reads): on one host they
 * agree; across hosts they must agree far better than the permit's lifetime (NTP does). Every write compares versions within an epoch, so a slow fill never
 * replaces a newer version with an older one.
 */
public final class KvCache implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvCache.class);
    private static final long CHECK_MILLIS = 100;
    private static final Backoff RECONNECT_BACKOFF = Backoff.of(CHECK_MILLIS, 1_000);

    /** Head of every script: {@code now} in epoch millis by Redis's clock; {@code permit(key)}: epoch, holder or nil. */
    private static final String PRELUDE = """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local function permit(key)
              local p = redis.call('GET', key)
              if not p then return nil end
              local e, d, h = string.match(p, '^(%d+):(%d+):(.*)$')
              if e and now < tonumber(d) then return e, h end
              return nil
            end
            local function epoch_of(v)
              if not v then return nil, nil end
              local c = string.find(v, ':', 1, true)
              local bar = c and string.find(v, '|', c + 1, true)
              if not bar then return nil, nil end
              return string.sub(v, 1, c - 1), tonumber(string.sub(v, c + 1, bar - 1))
            end
            """;

    /**
     * KEYS: permit, entry; ARGV: epoch, version, encoded entry, PX. Sets the entry under the epoch unless that epoch's
     * permit is no longer in force or a version at least as new is cached under it; 1 if written.
     */
    static final String FILL = PRELUDE + """
            local e = permit(KEYS[1])
            if e ~= ARGV[1] then return 0 end
            local ve, vv = epoch_of(redis.call('GET', KEYS[2]))
            if ve == e and vv >= tonumber(ARGV[2]) then return 0 end
            redis.call('SET', KEYS[2], e .. ':' .. ARGV[3], 'PX', ARGV[4])
            return 1
            """;

    /**
     * KEYS: n permits, then the n entries (entry i belongs to permit i); ARGV: the give-up time (epoch millis), then
     * per entry version, encoded entry, PX. Does nothing if it runs after the give-up time (returns -1); else sets
     * each entry whose partition has a permit in force under its epoch, unless a version at least as new is cached
     * under it, and returns 1. A partition without a permit in force is not read from, and its next epoch starts
     * empty, so there is nothing to write for it.
     */
    static final String WRITE = PRELUDE + """
            if now > tonumber(ARGV[1]) then return -1 end
            local n = #KEYS / 2
            for i = 1, n do
              local e = permit(KEYS[i])
              if e then
                local base = 1 + (i - 1) * 3
                local ve, vv = epoch_of(redis.call('GET', KEYS[n + i]))
                if not (ve == e and vv >= tonumber(ARGV[base + 1])) then
                  redis.call('SET', KEYS[n + i], e .. ':' .. ARGV[base + 2], 'PX', ARGV[base + 3])
                end
              end
            end
            return 1
            """;

    /**
     * KEYS: permit, epoch counter; ARGV: holder, deadline (epoch millis), fresh (1: a new epoch even if this holder's
     * permit is in force), PX. Renews this holder's permit in force under the same epoch or, when none is in force
     * or a fresh one is asked for, starts a new epoch. Refuses (empty string) while another holder's permit is in
     * force, or when the deadline has already passed. Returns the epoch.
     */
    static final String GRANT = PRELUDE + """
            if now >= tonumber(ARGV[2]) then return '' end
            local e, h = permit(KEYS[1])
            if e and h ~= ARGV[1] then return '' end
            if not e or ARGV[3] == '1' then e = tostring(redis.call('INCR', KEYS[2])) end
            redis.call('SET', KEYS[1], e .. ':' .. ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[4])
            return e
            """;

    /** What the cache holds for a key: {@code epoch} is null when no permit is in force and the cache may not be used. */
    public record Lookup(Optional<Entry> entry, String epoch) {
        /** Whether a permit was in force: a miss may then be filled under {@link #epoch}. */
        public boolean trusted() {
            return epoch != null;
        }
    }

    /** One connection to one Redis process, and the key prefixes of that process's entries and permits. */
    private record Session(StatefulRedisConnection<String, String> connection, RedisAsyncCommands<String, String> redis,
                           String entryPrefix, String permitPrefix, String runId) {
        boolean usable() {
            return connection.isOpen();
        }
    }

    private final RedisConfig config;
    private final Partitioner partitioner;
    private final ClientResources resources;
    private final RedisClient client;
    private final Map<String, String> shas = new ConcurrentHashMap<>();
    private final ScheduledExecutorService keeper;
    private volatile Session session;
    private final Backoff.Delays reconnectBackoff = RECONNECT_BACKOFF.delays();
    private long nextAttemptNanos;
    private boolean reportedDown;

    public KvCache(RedisConfig config, Partitioner partitioner) {
        this.config = config;
        this.partitioner = partitioner;
        this.resources = DefaultClientResources.builder().build();
        this.client = RedisClient.create(resources, RedisURI.create(config.uri()));
        client.setOptions(ClientOptions.builder()
                .autoReconnect(false)
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .socketOptions(SocketOptions.builder().connectTimeout(Duration.ofSeconds(2)).keepAlive(true).build())
                .timeoutOptions(TimeoutOptions.enabled(config.timeout()))
                .build());
        for (String script : List.of(FILL, WRITE, GRANT)) {
            shas.put(script, sha1(script));
        }
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
            return new Session(c, c.async(), config.keyPrefix() + "v:" + generation + ":",
                    config.keyPrefix() + "p:" + generation + ":", runId);
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

    private static String permitKey(Session s, int partition) {
        return s.permitPrefix() + partition;
    }

    /**
     * The cached state of a key, if its partition has a permit in force: empty on a miss; a tombstone (no value)
     * means "known not to exist". Untrusted (no epoch, nothing to fill) without a permit. One MGET of the permit and
     * the entry (no script: this is every read's cost); the permit's deadline is compared with this process's clock,
     * which must agree with the appliers' as Redis's must (see the class comment).
     */
    public CompletableFuture<Lookup> get(String key) {
        return call(s -> s.redis().mget(permitKey(s, partitioner.partitionOf(key)), s.entryPrefix() + key)
                .toCompletableFuture()
                .orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS)
                .thenApply(values -> lookup(key, values.get(0).getValueOrElse(null),
                        values.get(1).getValueOrElse(null), System.currentTimeMillis())));
    }

    /** What a read may use, from the raw permit ({@code epoch:deadline:holder}) and entry ({@code epoch:encoded}). */
    static Lookup lookup(String key, String permit, String entry, long nowMillis) {
        if (permit == null) {
            return new Lookup(Optional.empty(), null);
        }
        int a = permit.indexOf(':');
        int b = a < 0 ? -1 : permit.indexOf(':', a + 1);
        if (b < 0) {
            return new Lookup(Optional.empty(), null);
        }
        String epoch = permit.substring(0, a);
        long deadline;
        try {
            deadline = Long.parseLong(permit, a + 1, b, 10);
        } catch (NumberFormatException e) {
            return new Lookup(Optional.empty(), null);
        }
        if (nowMillis >= deadline) {
            return new Lookup(Optional.empty(), null);
        }
        if (entry != null && entry.length() > epoch.length() && entry.charAt(epoch.length()) == ':'
                && entry.startsWith(epoch)) {
            return new Lookup(Optional.of(CacheCodec.decode(key, entry.substring(epoch.length() + 1))), epoch);
        }
        return new Lookup(Optional.empty(), epoch);
    }

    /**
     * A reader's fill: caches {@code entry}, read from PostgreSQL after {@code lookup} missed, under the lookup's
     * epoch; completes with whether it was written (not when the permit lapsed or changed epoch since, or a version
     * at least as new is cached).
     */
    public CompletableFuture<Boolean> fill(Entry entry, Lookup lookup, Instant now) {
        if (!lookup.trusted()) {
            return CompletableFuture.completedFuture(false);
        }
        return call(s -> {
            Cached c = cached(entry, now);
            return this.<Long>run(s, FILL, ScriptOutputType.INTEGER,
                    new String[] {permitKey(s, partitioner.partitionOf(entry.key())), s.entryPrefix() + entry.key()},
                    lookup.epoch(), Long.toString(entry.version()), c.encoded(), Long.toString(c.ttlMillis()))
                    .thenApply(n -> n == 1L);
        });
    }

    /**
     * An applier's update: caches the states (of different keys) under their partitions' permits, never replacing a
     * newer version; completes with true once Redis ran it in time, false if it ran after {@code giveUpAt} (then it
     * changed nothing), exceptionally if Redis did not answer.
     */
    public CompletableFuture<Boolean> write(List<Entry> entries, Instant now, Instant giveUpAt) {
        return call(s -> {
            int n = entries.size();
            String[] keys = new String[2 * n];
            String[] args = new String[1 + 3 * n];
            args[0] = Long.toString(giveUpAt.toEpochMilli());
            for (int i = 0; i < n; i++) {
                Entry entry = entries.get(i);
                Cached c = cached(entry, now);
                keys[i] = permitKey(s, partitioner.partitionOf(entry.key()));
                keys[n + i] = s.entryPrefix() + entry.key();
                args[1 + 3 * i] = Long.toString(entry.version());
                args[2 + 3 * i] = c.encoded();
                args[3 + 3 * i] = Long.toString(c.ttlMillis());
            }
            return this.<Long>run(s, WRITE, ScriptOutputType.INTEGER, keys, args).thenApply(r -> r == 1L);
        });
    }

    /**
     * Grants {@code holder} the permit of a partition until {@code deadline}: renews its permit in force, or starts
     * a new epoch when none is in force or {@code fresh} is asked for. Completes with the epoch, or empty when
     * refused (another holder's permit is in force, or the deadline passed before Redis ran it).
     */
    public CompletableFuture<Optional<String>> grant(int partition, String holder, Instant deadline, boolean fresh) {
        if (holder.isEmpty() || holder.indexOf(':') >= 0) {
            throw new IllegalArgumentException("a permit holder is a non-empty name without ':'");
        }
        return call(s -> this.<String>run(s, GRANT, ScriptOutputType.VALUE,
                new String[] {permitKey(s, partition), permitKey(s, partition) + ":epoch"},
                holder, Long.toString(deadline.toEpochMilli()), fresh ? "1" : "0",
                Long.toString(Math.max(1, Duration.between(Instant.now(), deadline).toMillis()) + 60_000))
                .thenApply(e -> e == null || e.isEmpty() ? Optional.<String>empty() : Optional.of(e)));
    }

    /** Whether Redis answers (within the configured timeout). */
    public CompletableFuture<String> ping() {
        return call(s -> s.redis().ping().toCompletableFuture().orTimeout(config.timeout().toMillis(),
                TimeUnit.MILLISECONDS));
    }

    /** Removes a key from the cache whatever its version (tests and operators; the write path never needs it). */
    public CompletableFuture<Long> evict(String key) {
        return call(s -> s.redis().del(s.entryPrefix() + key).toCompletableFuture());
    }

    /** The encoded entry and how long Redis keeps it. */
    private record Cached(String encoded, long ttlMillis) {
    }

    /**
     * Live entries live at most the configured TTL and never past their own expiry (an entry already past it is
     * cached as a tombstone); tombstones live the tombstone TTL.
     */
    private Cached cached(Entry entry, Instant now) {
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
        return new Cached(CacheCodec.encode(toCache), Math.max(1, ttl));
    }

    /** Runs a script by its digest, loading it on the first NOSCRIPT; bounded by the configured timeout. */
    private <T> CompletableFuture<T> run(Session s, String script, ScriptOutputType type, String[] keys,
                                         String... args) {
        RedisAsyncCommands<String, String> redis = s.redis();
        return redis.<T>evalsha(shas.get(script), type, keys, args).toCompletableFuture()
                .exceptionallyCompose(e -> unwrap(e) instanceof RedisNoScriptException
                        ? redis.<T>eval(script, type, keys, args).toCompletableFuture()
                        : CompletableFuture.failedFuture(e))
                .orTimeout(config.timeout().toMillis(), TimeUnit.MILLISECONDS);
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
