package io.kvmesh.consumer.config;

import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.retry.Backoff;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;

/**
 * Everything kv-consumer is configured with, read once from {@code KVMESH_*} variables (see {@code .env.example}).
 *
 * @param prefetch        unacknowledged deliveries the broker may hand each partition's channel
 * @param applyThreads    applier threads; partition p is applied by thread p mod applyThreads, which batches the
 *                        deliveries of all its partitions into one transaction
 * @param batchSize       most operations applied in one transaction
 * @param retryBackoffMax longest pause between retries while PostgreSQL is down
 * @param cachePermit     the lifetime of a cache permit (KvCache): an applier whose cache update failed acknowledges
 *                        after at most this long; renewed every quarter of it
 * @param startupTimeout  how long to wait for PostgreSQL at start-up
 * @param expirySweep     how often entries past their TTL are turned into EXPIRE tombstones (the bound on how long
 *                        an expired entry's row lingers; reads hide it at once)
 * @param oplogRetention  how long operation log rows are kept: operation status lookups and the recognition of
 *                        repeated request ids reach back this far
 * @param httpBind        address of the consumer's own HTTP endpoint ({@code GET /healthz}); loopback by default
 * @param httpPort        its port; 0 picks a free one (tests)
 * @param instance        the {@code instance} tag of every meter at {@code GET /metrics} ({@code KVMESH_INSTANCE},
 *                        e.g. kv-consumer-1; by default host:port of the HTTP endpoint)
 */
public record ConsumerConfig(int prefetch, int applyThreads, int batchSize, Duration retryBackoffMax, Duration cachePermit,
                             Duration startupTimeout, Duration expirySweep, Duration oplogRetention, PostgresConfig postgres, RedisConfig redis, AmqpConfig amqp,
                             String httpBind, int httpPort, String instance) {

    /** The back-off of batch retries while PostgreSQL is down: 50 ms doubling up to {@code retryBackoffMax}. */
    public Backoff retryBackoff() {
        Duration max = retryBackoffMax.toMillis() < 1 ? Duration.ofMillis(1) : retryBackoffMax;
        return new Backoff(Duration.ofMillis(Math.min(50, max.toMillis())), max);
    }

    public static ConsumerConfig from(Env env) {
        int httpPort = env.integer("KVMESH_CONSUMER_HTTP_PORT", 9190, 0, 65_535);
        return new ConsumerConfig(
                env.integer("KVMESH_PREFETCH", 512, 1, 65_535),
                env.integer("KVMESH_APPLY_THREADS", 2, 1, 1024),
                env.integer("KVMESH_BATCH_SIZE", 256, 1, 10_000),
                env.millis("KVMESH_RETRY_BACKOFF_MAX_MS", 2_000),
                env.millis("KVMESH_CACHE_PERMIT_MS", 2_000),
                env.millis("KVMESH_STARTUP_TIMEOUT_MS", 60_000),
                env.millis("KVMESH_EXPIRY_SWEEP_MS", 1_000),
                oplogRetention(env),
                PostgresConfig.from(env),
                RedisConfig.from(env),
                AmqpConfig.from(env),
                env.string("KVMESH_CONSUMER_HTTP_BIND", "127.0.0.1"),
                httpPort,
                instance(env, httpPort));
    }

    /**
     * {@code KVMESH_OPLOG_RETENTION_HOURS} (168), or {@code KVMESH_OPLOG_RETENTION_SECONDS} when set (at least 10: a
     * short retention for benchmarks and tests, e.g. ghz-bench's scale run).
     */
    static Duration oplogRetention(Env env) {
        int seconds = env.integer("KVMESH_OPLOG_RETENTION_SECONDS", 0, 0, Integer.MAX_VALUE);
        if (seconds > 0) {
            if (seconds < 10) {
                throw new IllegalArgumentException("KVMESH_OPLOG_RETENTION_SECONDS must be at least 10 (got " + seconds + ")");
            }
            return Duration.ofSeconds(seconds);
        }
        return Duration.ofHours(env.integer("KVMESH_OPLOG_RETENTION_HOURS", 168, 1, 24 * 3650));
    }

    /** {@code KVMESH_INSTANCE}, else host:port of the admin endpoint (unique per container or per port). */
    static String instance(Env env, int httpPort) {
        return env.string("KVMESH_INSTANCE", hostName(env) + ":" + httpPort);
    }

    private static String hostName(Env env) {
        String host = env.string("HOSTNAME", "");
        if (!host.isBlank()) {
            return host;
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "localhost";
        }
    }
}
