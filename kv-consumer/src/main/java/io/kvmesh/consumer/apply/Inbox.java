package io.kvmesh.consumer.apply;

import com.google.protobuf.InvalidProtocolBufferException;
import io.kvmesh.core.queue.OperationCodec;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;

/**
 * The deliveries of one applier's partitions, in arrival order (so each partition's stay in queue order), and how a
 * batch is taken from them: whatever has arrived, up to a number of operations, decoded. Deliveries whose channel
 * closed are skipped (the broker redelivers them); an undecodable one is handed to the caller to dead-letter.
 */
public final class Inbox {
    private final BlockingQueue<Delivery> queue = new LinkedBlockingQueue<>();
    private final int maxOperations;

    public Inbox(int maxOperations) {
        if (maxOperations < 1) {
            throw new IllegalArgumentException("batch size must be positive: " + maxOperations);
        }
        this.maxOperations = maxOperations;
    }

    /** Called on a partition channel's dispatch thread for each delivery, in queue order. */
    public void offer(Delivery delivery) {
        queue.add(delivery);
    }

    /** Deliveries waiting. */
    public int size() {
        return queue.size();
    }

    /**
     * Waits up to {@code wait} for a first delivery, then takes what else has arrived while the batch holds fewer
     * than the maximum of operations (a single delivery may exceed it: a message is never split). Empty when nothing
     * usable arrived.
     */
    public List<DecodedDelivery> nextBatch(Duration wait, BiConsumer<Delivery, Exception> undecodable) throws InterruptedException {
        List<DecodedDelivery> batch = new ArrayList<>();
        Delivery first = queue.poll(wait.toNanos(), TimeUnit.NANOSECONDS);
        if (first == null) {
            return batch;
        }
        int ops = take(first, batch, undecodable);
        for (Delivery d; ops < maxOperations && (d = queue.poll()) != null; ) {
            ops += take(d, batch, undecodable);
        }
        return batch;
    }

    private static int take(Delivery d, List<DecodedDelivery> batch, BiConsumer<Delivery, Exception> undecodable) {
        if (!d.channel().isOpen()) {
            return 0;
        }
        try {
            DecodedDelivery decoded = new DecodedDelivery(d, OperationCodec.decodeMessage(d.contentType(), d.body()));
            batch.add(decoded);
            return decoded.ops().size();
        } catch (InvalidProtocolBufferException | RuntimeException e) {
            undecodable.accept(d, e);
            return 0;
        }
    }
}
