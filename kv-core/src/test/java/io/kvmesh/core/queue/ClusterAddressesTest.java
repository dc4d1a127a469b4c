package io.kvmesh.core.queue;

import com.rabbitmq.client.Address;
import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** A RabbitMQ cluster: every node's address for failover, and quorum queues replicated on the configured number. */
class ClusterAddressesTest {
    private static final String URI = "amqp://kvmesh:secret@127.0.0.1:5672/%2F";

    @Test
    void addresses_areParsed_andTheUriKeepsTheCredentials() {
        AmqpConfig c = AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", URI,
                "KVMESH_AMQP_ADDRESSES", "127.0.0.1:5701, 127.0.0.1:5702,127.0.0.1:5703", "KVMESH_AMQP_QUORUM_SIZE", "3")));
        assertThat(c.addresses()).containsExactly("127.0.0.1:5701", "127.0.0.1:5702", "127.0.0.1:5703");
        assertThat(c.quorumGroupSize()).isEqualTo(3);
        assertThat(c.toString()).doesNotContain("secret");
        assertThat(new AmqpConnections(c).addresses())
                .containsExactly(new Address("127.0.0.1", 5701), new Address("127.0.0.1", 5702), new Address("127.0.0.1", 5703));
    }

    @Test
    void withoutAddresses_theUriHostAlone_andNoGroupSizeArgument() {
        AmqpConfig c = AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", URI)));
        assertThat(c.addresses()).isEmpty();
        assertThat(new QueueTopology(c).partitionQueueArguments()).doesNotContainKey("x-quorum-initial-group-size")
                .containsEntry("x-queue-type", "quorum");
    }

    @Test
    void groupSize_isDeclaredOnThePartitionQueues() {
        AmqpConfig c = AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", URI, "KVMESH_AMQP_QUORUM_SIZE", "3")));
        assertThat(new QueueTopology(c).partitionQueueArguments()).containsEntry("x-quorum-initial-group-size", 3)
                .containsEntry("x-single-active-consumer", true);
    }

    @Test
    void badAddresses_areRefusedAtStartUp() {
        assertThatThrownBy(() -> AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", URI, "KVMESH_AMQP_ADDRESSES", "127.0.0.1"))))
                .hasMessageContaining("not host:port");
        assertThatThrownBy(() -> AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", URI, "KVMESH_AMQP_ADDRESSES", "h:99999"))))
                .hasMessageContaining("no valid port");
    }
}
