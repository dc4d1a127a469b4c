package io.kvmesh.core.config;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * How to reach RabbitMQ and the shape of the operation queues.
 *
 * @param uri           {@code amqp://USER:PASSWORD@host:port/vhost}; required, and with its user and password, because
 *                      the client would otherwise log in as guest/guest
 * @param namePrefix    prefix of the exchange and queue names ({@code kv} gives {@code kv.ops}, {@code kv.ops.0}, ...)
 * @param partitions    number of partition queues; a key always maps to the same one
 * @param confirmTimeout how long a publish waits for the broker's confirm before failing UNAVAILABLE
 * @param deliveryLimit deliveries of one message before it is dead-lettered (a backstop for poison messages)
 * @param addresses     {@code host:port} of every node of a RabbitMQ cluster ({@code KVMESH_AMQP_ADDRESSES},
 *                      comma-separated); empty: the host of {@code uri} only. The user, password and vhost always
 *                      come from {@code uri}; each (re)connect tries the nodes in a shuffled order
 * @param quorumGroupSize {@code x-quorum-initial-group-size} of the partition queues ({@code KVMESH_AMQP_QUORUM_SIZE});
 *                      0: not set (the broker's default). A cluster of N nodes uses min(N, 3)
 */
public record AmqpConfig(String uri, String namePrefix, int partitions, Duration confirmTimeout, int deliveryLimit,
                         List<String> addresses, int quorumGroupSize) {

    public AmqpConfig {
        addresses = List.copyOf(addresses);
    }

    public static AmqpConfig from(Env env) {
        return new AmqpConfig(
                Credentials.requireUserInfo("KVMESH_AMQP_URI",
                        env.required("KVMESH_AMQP_URI", Credentials.WHERE_FROM), "amqp://USER:PASSWORD@host:5672/%2F"),
                env.string("KVMESH_AMQP_PREFIX", "kv"),
                env.integer("KVMESH_PARTITIONS", 8, 1, 1024),
                env.millis("KVMESH_CONFIRM_TIMEOUT_MS", 5_000),
                env.integer("KVMESH_DELIVERY_LIMIT", 50, 1, 10_000),
                parseAddresses(env.string("KVMESH_AMQP_ADDRESSES", "")),
                env.integer("KVMESH_AMQP_QUORUM_SIZE", 0, 0, 64));
    }

    /** "h1:p1, h2:p2" -> ["h1:p1", "h2:p2"]; each entry must name a host and a port. */
    static List<String> parseAddresses(String list) {
        List<String> out = new ArrayList<>();
        for (String a : list.split(",")) {
            String s = a.trim();
            if (s.isEmpty()) {
                continue;
            }
            int colon = s.lastIndexOf(':');
            if (colon <= 0 || colon == s.length() - 1) {
                throw new IllegalArgumentException("KVMESH_AMQP_ADDRESSES: '" + s + "' is not host:port");
            }
            try {
                int port = Integer.parseInt(s.substring(colon + 1));
                if (port < 1 || port > 65535) {
                    throw new NumberFormatException();
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("KVMESH_AMQP_ADDRESSES: '" + s + "' has no valid port");
            }
            out.add(s);
        }
        return out;
    }

    public AmqpConfig withNamePrefix(String prefix) {
        return new AmqpConfig(uri, prefix, partitions, confirmTimeout, deliveryLimit, addresses, quorumGroupSize);
    }

    @Override
    public String toString() {
        return "AmqpConfig[uri=" + Credentials.mask(uri) + ", namePrefix=" + namePrefix
                + ", partitions=" + partitions + ", addresses=" + addresses + ", quorumGroupSize=" + quorumGroupSize + "]";
    }
}
