package io.kvmesh.core.config;

import java.time.Duration;

/**
 * How to reach Redis and how the cache behaves.
 *
 * @param uri       {@code redis://:PASSWORD@host:port} (or {@code redis://USER:PASSWORD@...}); required, with a password
 * @param keyPrefix prefix of every cache key, so several deployments (or test runs) can share one Redis
 * @param timeout   how long a cache call may take before the caller falls back to PostgreSQL
 * @param entryTtl  how long a cached live entry lives at most (bounds staleness if an update is ever missed)
 * @param tombstoneTtl how long a cached "not found" lives
 */
public record RedisConfig(String uri, String keyPrefix, Duration timeout, Duration entryTtl, Duration tombstoneTtl) {

    public static RedisConfig from(Env env) {
        return new RedisConfig(
                Credentials.requireUserInfo("KVMESH_REDIS_URI",
                        env.required("KVMESH_REDIS_URI", Credentials.WHERE_FROM), "redis://:PASSWORD@host:6379"),
                env.string("KVMESH_REDIS_PREFIX", "kv:"),
                env.millis("KVMESH_REDIS_TIMEOUT_MS", 250),
                env.millis("KVMESH_CACHE_TTL_MS", 300_000),
                env.millis("KVMESH_CACHE_TOMBSTONE_TTL_MS", 60_000));
    }

    public RedisConfig withUri(String otherUri) {
        return new RedisConfig(otherUri, keyPrefix, timeout, entryTtl, tombstoneTtl);
    }

    public RedisConfig withKeyPrefix(String prefix) {
        return new RedisConfig(uri, prefix, timeout, entryTtl, tombstoneTtl);
    }

    @Override
    public String toString() {
        return "RedisConfig[uri=" + Credentials.mask(uri) + ", keyPrefix=" + keyPrefix + ", timeout=" + timeout
                + ", entryTtl=" + entryTtl + ", tombstoneTtl=" + tombstoneTtl + "]";
    }
}
