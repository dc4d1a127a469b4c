package io.kvmesh.service.write;

import java.time.Duration;

/**
 * A validated write.
 *
 * @param value           the value of a put; null for a delete
 * @param requestId       the client's request id (field, Idempotency-Key or the client's own x-request-id); "" = none
 * @param expectedVersion the version the key must have for the write to apply (0 = must not exist); null = no condition
 * @param ttl             how long a put lives after it applies; null or zero = forever
 * @param sync            answer only once applied
 * @param syncWait        how long a SYNC write may wait for its apply before answering "queued"
 * @param edge            Envoy's name for the request, kept across its retries; null when it did not come through Envoy
 */
public record WriteRequest(String key, String value, String requestId, Long expectedVersion, Duration ttl,
                           boolean sync, Duration syncWait, EdgeRequest edge) {
}
