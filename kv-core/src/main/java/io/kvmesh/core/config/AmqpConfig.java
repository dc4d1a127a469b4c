package io.kvmesh.core.config;

import java.time.Duration;

/**
 * How to reach RabbitMQ and the shape of the operation queues.
 *
 * @param uri           {@code amqp://USER:PASSWORD@host:port/vhost}; required, and with its user and password, because
 *                      the client would otherwise log in as guest/guest
 * @param namePrefix    prefix of the exchange and queue names ({@code kv} gives {@code kv.ops}, {@code kv.ops.0}, ...)
 * @param partitions    number of partition queues; a key always maps to the same one
 * @param confirmTimeout how long a publish waits for the broker's confirm before failing UNAVAILABLE
 * @param deliveryLimit deliveries of one message before it is dead-lettered (a backstop for poison messages)
 */
public record AmqpConfig(String uri, String namePrefix, int partitions, Duration confirmTimeout, int deliveryLimit) {

    public static AmqpConfig from(Env env) {
        return new AmqpConfig(
                Credentials.requireUserInfo("KVMESH_AMQP_URI",
                        env.required("KVMESH_AMQP_URI", Credentials.WHERE_FROM), "amqp://USER:PASSWORD@host:5672/%2F"),
                env.string("KVMESH_AMQP_PREFIX", "kv"),
                env.integer("KVMESH_PARTITIONS", 8, 1, 1024),
                env.millis("KVMESH_CONFIRM_TIMEOUT_MS", 5_000),
                env.integer("KVMESH_DELIVERY_LIMIT", 50, 1, 10_000));
    }

    public AmqpConfig withNamePrefix(String prefix) {
        return new AmqpConfig(uri, prefix, partitions, confirmTimeout, deliveryLimit);
    }

    @Override
    public String toString() {
        return "AmqpConfig[uri=" + Credentials.mask(uri) + ", namePrefix=" + namePrefix
                + ", partitions=" + partitions + "]";
    }
}
