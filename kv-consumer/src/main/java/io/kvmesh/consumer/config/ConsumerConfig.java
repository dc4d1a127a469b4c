package io.kvmesh.consumer.config;

import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.config.RedisConfig;

import java.time.Duration;

/**
 * Everything kv-consumer is configured with, read once from {@code KVMESH_*} variables (see {@code .env.example}).
 *
 * @param prefetch        unacknowledged deliveries the broker may hand each partition's channel
 * @param batchSize       most operations applied in one transaction
 * @param retryBackoffMax longest pause between retries while PostgreSQL is down
 * @param cacheRetry      how often cache updates that failed (Redis down) are retried
 * @param startupTimeout  how long to wait for PostgreSQL at start-up
 */
public record ConsumerConfig(int prefetch, int batchSize, Duration retryBackoffMax, Duration cacheRetry,
                             Duration startupTimeout, PostgresConfig postgres, RedisConfig redis, AmqpConfig amqp) {

    public static ConsumerConfig from(Env env) {
        return new ConsumerConfig(
                env.integer("KVMESH_PREFETCH", 512, 1, 65_535),
                env.integer("KVMESH_BATCH_SIZE", 256, 1, 10_000),
                env.millis("KVMESH_RETRY_BACKOFF_MAX_MS", 2_000),
                env.millis("KVMESH_CACHE_RETRY_MS", 500),
                env.millis("KVMESH_STARTUP_TIMEOUT_MS", 60_000),
                PostgresConfig.from(env),
                RedisConfig.from(env),
                AmqpConfig.from(env));
    }
}
