package io.kvmesh.service.write;

import java.time.Duration;

/**
 * A validated write.
 *
 * @param value           the value of a put; null for a delete
 * @param expectedVersion the version the key must have for the write to apply (0 = must not exist); null = no condition
 * @param ttl             how long a put lives after it applies; null or zero = forever
 * @param sync            answer only once applied
 * @param syncWait        how long a SYNC write may wait for its apply before answering "queued"
 */
public record WriteRequest(String key, String value, String requestId, Long expectedVersion, Duration ttl,
                           boolean sync, Duration syncWait) {
}
