package io.kvmesh.consumer.apply;

/**
 * A message handed to this consumer, with the channel it must be acknowledged on. {@code contentType} says whether
 * it carries a batch of operations or one (from replicas older than group commit); {@code redelivered} that the
 * broker delivered it before (a consumer died or gave it back before acknowledging it).
 */
public record Delivery(PartitionChannel channel, long tag, boolean redelivered, String contentType, byte[] body) {
}
