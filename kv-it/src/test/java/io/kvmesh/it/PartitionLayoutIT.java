package io.kvmesh.it;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.MessageProperties;
import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.testing.TestServers;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * A deployment that ran with more partitions than it is now configured for: operations still queued in a partition
 * queue the new count drops would never be applied, and their keys now map elsewhere. Declaring the topology refuses
 * that with a message saying what to do; empty leftover queues are no obstacle.
 */
class PartitionLayoutIT {

    private static AmqpConfig withPartitions(AmqpConfig c, int partitions) {
        return new AmqpConfig(c.uri(), c.namePrefix(), partitions, c.confirmTimeout(), c.deliveryLimit(), c.addresses(),
                c.quorumGroupSize());
    }

    @Test
    void fewerPartitions_refusedWhileADroppedQueueHoldsOperations_acceptedOnceItIsEmpty() throws Exception {
        AmqpConfig base = TestServers.isolate("layout").amqp();
        QueueTopology eight = new QueueTopology(withPartitions(base, 8));
        QueueTopology two = new QueueTopology(withPartitions(base, 2));
        try (Connection c = new AmqpConnections(base).open("test")) {
            try (Channel ch = c.createChannel()) {
                eight.declare(ch);
                ch.confirmSelect();
                ch.basicPublish(eight.opsExchange(), QueueTopology.routingKey(5), MessageProperties.PERSISTENT_BASIC,
                        "queued under 8 partitions".getBytes(StandardCharsets.UTF_8));
                ch.waitForConfirmsOrDie(5_000);
            }
            await().until(() -> messages(c, eight.partitionQueue(5)) == 1);

            assertThatThrownBy(() -> {
                try (Channel ch = c.createChannel()) {
                    two.declare(ch);
                }
            }).isInstanceOf(IOException.class)
                    .hasMessageContaining(eight.partitionQueue(5))
                    .hasMessageContaining("KVMESH_PARTITIONS=2");

            try (Channel ch = c.createChannel()) {
                ch.queuePurge(eight.partitionQueue(5));
            }
            try (Channel ch = c.createChannel()) {
                two.declare(ch); // leftover queues, all empty: nothing is stranded
                assertThat(ch.isOpen()).isTrue();
            }
            try (Channel ch = c.createChannel()) {
                for (int p = 0; p < 8; p++) {
                    ch.queueDelete(eight.partitionQueue(p));
                }
            }
        }
    }

    /**
     * A broker grown from one node to a cluster: its queues were made without a group size, the services now ask for
     * three. The existing queues are kept as they are (with their operations), not refused as inequivalent.
     */
    @Test
    void queuesMadeWithoutAGroupSize_areKept_whenTheServicesNowAskForOne() throws Exception {
        AmqpConfig alone = withPartitions(TestServers.isolate("grown").amqp(), 2);
        AmqpConfig grown = new AmqpConfig(alone.uri(), alone.namePrefix(), 2, alone.confirmTimeout(),
                alone.deliveryLimit(), alone.addresses(), 3);
        QueueTopology before = new QueueTopology(alone);
        QueueTopology after = new QueueTopology(grown);
        try (Connection c = new AmqpConnections(alone).open("test")) {
            try (Channel ch = c.createChannel()) {
                before.declare(ch);
                ch.confirmSelect();
                ch.basicPublish(before.opsExchange(), QueueTopology.routingKey(1), MessageProperties.PERSISTENT_BASIC,
                        "queued on one node".getBytes(StandardCharsets.UTF_8));
                ch.waitForConfirmsOrDie(5_000);
            }
            try (Channel ch = c.createChannel()) {
                after.declare(ch);
                assertThat(ch.isOpen()).isTrue();
            }
            await().until(() -> messages(c, after.partitionQueue(1)) == 1);
            try (Channel ch = c.createChannel()) {
                ch.queueDelete(after.deadLetterQueue());
                for (int p = 0; p < 2; p++) {
                    ch.queueDelete(after.partitionQueue(p));
                }
                // a missing queue is declared with today's arguments (a group size of 3 on a single node: one member)
                after.declare(ch);
                assertThat(messages(c, after.partitionQueue(0))).isZero();
                ch.queueDelete(after.deadLetterQueue());
                for (int p = 0; p < 2; p++) {
                    ch.queueDelete(after.partitionQueue(p));
                }
            }
        }
    }

    private static long messages(Connection c, String queue) throws Exception {
        try (Channel ch = c.createChannel()) {
            return ch.queueDeclarePassive(queue).getMessageCount();
        }
    }
}
