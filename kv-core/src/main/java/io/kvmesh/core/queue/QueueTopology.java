package io.kvmesh.core.queue;

import com.rabbitmq.client.BuiltinExchangeType;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ShutdownSignalException;
import io.kvmesh.core.config.AmqpConfig;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeoutException;

/**
 * Names and declarations of the exchanges and queues. Both processes declare them at start-up, so start order does
 * not matter: a missing queue is declared with the arguments below; a queue that exists is left as it was made (a
 * passive declaration first). Its arguments need not match today's: a broker grown from one node to three keeps the
 * queues it made alone, without {@code x-quorum-initial-group-size}, and the stack manager adds their members on the
 * new nodes ({@code rabbitmq-queues grow}); declaring them again with the new group size would be refused
 * (PRECONDITION_FAILED, inequivalent arg) and stop every process from starting.
 * <ul>
 *   <li>{@code <p>.ops}: direct exchange; routing key = partition number</li>
 *   <li>{@code <p>.ops.<n>}: quorum queue per partition, single active consumer, dead-letters to {@code <p>.ops.dlx}</li>
 *   <li>{@code <p>.ops.dead}: quorum queue holding operations that could never be applied</li>
 *   <li>{@code <p>.events}: fanout exchange of change events (SYNC completion, Watch)</li>
 * </ul>
 * On a cluster the quorum queues get {@code x-quorum-initial-group-size} (config: min(nodes, 3)), so each is
 * replicated on that many nodes and survives the loss of a minority of them.
 */
public final class QueueTopology {
    /** The most partitions a deployment may have (AmqpConfig's bound for KVMESH_PARTITIONS). */
    private static final int MAX_PARTITIONS = 1024;
    private final AmqpConfig config;

    public QueueTopology(AmqpConfig config) {
        this.config = config;
    }

    public String opsExchange() {
        return config.namePrefix() + ".ops";
    }

    public String deadLetterExchange() {
        return config.namePrefix() + ".ops.dlx";
    }

    public String deadLetterQueue() {
        return config.namePrefix() + ".ops.dead";
    }

    /** Fanout exchange of change events; each kv-service replica binds its own exclusive queue to it. */
    public String eventsExchange() {
        return config.namePrefix() + ".events";
    }

    public String partitionQueue(int partition) {
        return config.namePrefix() + ".ops." + partition;
    }

    public static String routingKey(int partition) {
        return Integer.toString(partition);
    }

    public int partitions() {
        return config.partitions();
    }

    /** The arguments each partition queue is declared with. */
    public Map<String, Object> partitionQueueArguments() {
        return withGroupSize(Map.of(
                "x-queue-type", "quorum",
                "x-single-active-consumer", true,
                "x-dead-letter-exchange", deadLetterExchange(),
                "x-delivery-limit", config.deliveryLimit()));
    }

    private Map<String, Object> withGroupSize(Map<String, Object> args) {
        if (config.quorumGroupSize() <= 0) {
            return args;   // single node: exactly the arguments earlier versions declared
        }
        Map<String, Object> out = new HashMap<>(args);
        out.put("x-quorum-initial-group-size", config.quorumGroupSize());
        return Map.copyOf(out);
    }

    public void declare(Channel channel) throws IOException {
        channel.exchangeDeclare(deadLetterExchange(), BuiltinExchangeType.FANOUT, true);
        declareIfAbsent(channel, deadLetterQueue(), withGroupSize(Map.of("x-queue-type", "quorum")));
        channel.queueBind(deadLetterQueue(), deadLetterExchange(), "");
        channel.exchangeDeclare(opsExchange(), BuiltinExchangeType.DIRECT, true);
        channel.exchangeDeclare(eventsExchange(), BuiltinExchangeType.FANOUT, true);
        Map<String, Object> args = partitionQueueArguments();
        for (int p = 0; p < config.partitions(); p++) {
            declareIfAbsent(channel, partitionQueue(p), args);
            channel.queueBind(partitionQueue(p), opsExchange(), routingKey(p));
        }
        refuseStrandedOperations(channel.getConnection());
    }

    /** Declares a durable queue with these arguments unless it exists (then it stays as it was declared). */
    private static void declareIfAbsent(Channel channel, String queue, Map<String, Object> args) throws IOException {
        if (!exists(channel.getConnection(), queue)) {
            channel.queueDeclare(queue, true, false, false, args);
        }
    }

    /** Whether the queue exists, by a passive declaration on a channel of its own (a 404 closes that channel). */
    private static boolean exists(Connection connection, String queue) throws IOException {
        Channel probe = null;
        try {
            probe = connection.createChannel();
            probe.queueDeclarePassive(queue);
            return true;
        } catch (IOException | ShutdownSignalException e) {
            if (!connection.isOpen()) {
                throw e instanceof IOException io ? io : new IOException("connection closed probing " + queue, e);
            }
            return false;
        } finally {
            closeQuietly(probe);
        }
    }

    /**
     * Refuses to go on when a partition queue beyond the configured count still holds operations: the deployment ran
     * with more partitions before (8 was the default), nothing would consume those operations, and their keys now
     * map to other queues, so later writes to the same keys could overtake them. Queues are checked upwards from the
     * configured count until one does not exist; empty ones are left alone (they receive nothing any more).
     */
    private void refuseStrandedOperations(Connection connection) throws IOException {
        for (int p = config.partitions(); p < MAX_PARTITIONS; p++) {
            long waiting;
            Channel probe = null;
            try {
                probe = connection.createChannel();
                waiting = probe.queueDeclarePassive(partitionQueue(p)).getMessageCount();
            } catch (IOException | ShutdownSignalException e) {
                return; // 404: no such queue, so none above it either (the broker closed the probe's channel)
            } finally {
                closeQuietly(probe);
            }
            if (waiting > 0) {
                throw new IOException("partition queue " + partitionQueue(p) + " holds " + waiting
                        + " operation(s) queued when this deployment had more than " + config.partitions()
                        + " partitions (KVMESH_PARTITIONS=" + config.partitions() + " now): start with the earlier"
                        + " count until the queues are empty, then with the new one (a run folder of ./start.sh"
                        + " records its count in RUN_DIR/partitions)");
            }
        }
    }

    private static void closeQuietly(Channel channel) {
        if (channel != null && channel.isOpen()) {
            try {
                channel.close();
            } catch (IOException | TimeoutException | ShutdownSignalException e) {
                // the probe is done either way
            }
        }
    }
}
