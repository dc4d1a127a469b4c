package io.kvmesh.core.queue;

import io.kvmesh.core.config.Env;

/**
 * How a replica's publisher coalesces writes into broker messages (group commit).
 *
 * @param lanes     confirm-mode channels shared by all writes; partition p uses lane p mod lanes
 * @param inFlight  unconfirmed messages a lane may have; writes arriving meanwhile wait and go out together in the
 *                  next message of their partition (1 = strict group commit: one message per partition per round
 *                  trip to the broker)
 * @param maxOps    most operations in one message
 * @param maxBytes  most bytes of operations in one message (one operation always fits, however large)
 * @param lingerMicros how long a busy lane (one that sent a message in the last 10 ms, or twice the linger) waits, once it has room, before
 *                  it sends what waits, so that more writes share the message; 0 sends at once. An idle lane never
 *                  waits, so a lone write pays nothing.
 */
public record PublishBatching(int lanes, int inFlight, int maxOps, int maxBytes, int lingerMicros) {

    public PublishBatching(int lanes, int inFlight, int maxOps, int maxBytes) {
        this(lanes, inFlight, maxOps, maxBytes, 0);
    }

    public static PublishBatching from(Env env) {
        return new PublishBatching(
                env.integer("KVMESH_PUBLISHER_LANES", 4, 1, 64),
                env.integer("KVMESH_PUBLISH_IN_FLIGHT", 1, 1, 1024),
                env.integer("KVMESH_PUBLISH_BATCH_OPS", 256, 1, 100_000),
                env.integer("KVMESH_PUBLISH_BATCH_BYTES", 1 << 20, 1024, 64 << 20),
                env.integer("KVMESH_PUBLISH_LINGER_US", 0, 0, 100_000));
    }
}
