package io.kvmesh.service.watch;

import io.kvmesh.core.config.Env;

import java.time.Duration;

/**
 * How much a replica lets Watch streams hold back, and how often an idle stream that asked for it hears progress.
 * A watcher over either of its own bounds, or the one holding the most when the replica is over its total, is closed
 * with RESOURCE_EXHAUSTED; the client may resume with start_version.
 *
 * @param events           events one stream may have waiting for its client
 * @param bytes            bytes (serialized events) one stream may have waiting for its client
 * @param replicaBytes     bytes all streams of this replica may have waiting together
 * @param progressInterval quiet time after which a progress_notify stream gets a PROGRESS event
 */
public record WatchLimits(int events, long bytes, long replicaBytes, Duration progressInterval) {

    public static WatchLimits from(Env env) {
        return new WatchLimits(
                env.integer("KVMESH_WATCH_BUFFER", 10_000, 1, 10_000_000),
                env.integer("KVMESH_WATCH_BUFFER_BYTES", 16 << 20, 64 << 10, Integer.MAX_VALUE),
                env.integer("KVMESH_WATCH_REPLICA_BYTES", 128 << 20, 64 << 10, Integer.MAX_VALUE),
                env.millis("KVMESH_WATCH_PROGRESS_MS", 10_000));
    }
}
