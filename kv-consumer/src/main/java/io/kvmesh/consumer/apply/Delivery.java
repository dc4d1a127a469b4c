package io.kvmesh.consumer.apply;

import com.rabbitmq.client.Channel;

/** A message handed to this consumer, with the channel it must be acknowledged on. */
public record Delivery(Channel channel, long tag, byte[] body) {
}
