package io.kvmesh.core.queue;

import com.rabbitmq.client.BuiltinExchangeType;
import com.rabbitmq.client.Channel;
import io.kvmesh.core.config.AmqpConfig;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;

/**
 * Names and declarations of the exchanges and queues. Both processes declare them at start-up; declaring again
 * with the same arguments is a no-op, so start order does not matter.
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
        channel.queueDeclare(deadLetterQueue(), true, false, false, withGroupSize(Map.of("x-queue-type", "quorum")));
        channel.queueBind(deadLetterQueue(), deadLetterExchange(), "");
        channel.exchangeDeclare(opsExchange(), BuiltinExchangeType.DIRECT, true);
        channel.exchangeDeclare(eventsExchange(), BuiltinExchangeType.FANOUT, true);
        Map<String, Object> args = partitionQueueArguments();
        for (int p = 0; p < config.partitions(); p++) {
            channel.queueDeclare(partitionQueue(p), true, false, false, args);
            channel.queueBind(partitionQueue(p), opsExchange(), routingKey(p));
        }
    }
}
