package io.kvmesh.consumer.apply;

import com.rabbitmq.client.Channel;

/**
 * A message handed to this consumer, with the channel it must be acknowledged on. {@code contentType} says whether
 * it carries a batch of operations or one (from replicas older than group commit).
 */
public record Delivery(Channel channel, long tag, String contentType, byte[] body) {
}
