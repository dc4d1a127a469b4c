package io.kvmesh.service.config;

import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import io.kvmesh.core.config.Limits;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.queue.PublishBatching;
import io.kvmesh.service.auth.AuthConfig;
import io.kvmesh.service.watch.WatchLimits;

import java.time.Duration;

/**
 * Everything kv-service is configured with, read once from {@code KVMESH_*} variables (see {@code .env.example}).
 *
 * @param bindAddress     address the gRPC server binds (127.0.0.1 natively, 0.0.0.0 in a container)
 * @param port            gRPC port
 * @param workerThreads   threads running request handlers; 0 runs them on the transport's threads (they never block)
 * @param eventLoops      the gRPC transport's Netty event-loop threads (all connections share them; with
 *                        {@code workerThreads} 0 the handlers run on them too); 0 keeps grpc-java's default, twice the
 *                        processors
 * @param publishing      how writes are coalesced into broker messages (lanes, messages in flight, batch bounds)
 * @param shutdownDrain   how long a stopping replica keeps serving after its health turns NOT_SERVING, before it closes
 *                        its port: the time a balancer's health check takes to stop sending it requests (Envoy's
 *                        here: every 1 s, unhealthy after 2 failures), so no request meets a closed port
 * @param shutdownGrace   how long in-flight calls may take to finish on shutdown, after the drain
 * @param startupTimeout  how long to wait for PostgreSQL at start-up
 * @param syncTimeout     longest a SYNC write waits for its apply before answering "queued" (the call's deadline,
 *                        if sooner, wins)
 * @param watch           what Watch streams may hold back, and their progress interval
 * @param pendingMarkTtl  how long an accepted operation is reported PENDING if it is never applied
 * @param eventsIdle      how long the replica stays subscribed to change events after its last SYNC write or Watch
 *                        (while none waits or is open); zero keeps it subscribed always
 * @param auth            whether KeyValue calls need a token, and the keys tokens are checked with
 * @param admin           the admin HTTP endpoint (/healthz, /metrics) and the meters' instance name
 */
public record ServiceConfig(String bindAddress, int port, int workerThreads, int eventLoops, PublishBatching publishing, Duration shutdownDrain,
                            Duration shutdownGrace,
                            Duration startupTimeout, Duration syncTimeout, WatchLimits watch, Duration pendingMarkTtl, Duration eventsIdle, PostgresConfig postgres,
                            RedisConfig redis, AmqpConfig amqp, Limits limits, AuthConfig auth, AdminSettings admin) {

    public static ServiceConfig from(Env env) {
        return new ServiceConfig(
                env.string("KVMESH_GRPC_BIND", "127.0.0.1"),
                env.integer("KVMESH_GRPC_PORT", 9090, 0, 65535),
                env.integer("KVMESH_WORKER_THREADS", 0, 0, 1024),
                env.integer("KVMESH_GRPC_EVENT_LOOPS", 0, 0, 256),
                PublishBatching.from(env),
                env.millis("KVMESH_SHUTDOWN_DRAIN_MS", 3_000),
                env.millis("KVMESH_SHUTDOWN_GRACE_MS", 10_000),
                env.millis("KVMESH_STARTUP_TIMEOUT_MS", 60_000),
                env.millis("KVMESH_SYNC_TIMEOUT_MS", 5_000),
                WatchLimits.from(env),
                env.millis("KVMESH_PENDING_MARK_TTL_MS", 6 * 3600 * 1000),
                env.millis("KVMESH_EVENTS_IDLE_MS", 30_000),
                PostgresConfig.from(env),
                RedisConfig.from(env),
                AmqpConfig.from(env),
                Limits.from(env),
                AuthConfig.from(env),
                AdminSettings.from(env));
    }
}
