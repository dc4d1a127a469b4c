package io.kvmesh.consumer.apply;

import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.consumer.metrics.ConsumerMetrics.DeadLetterReason;
import io.kvmesh.queue.v1.Operation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;

/**
 * After a batch failed with an error retrying will not mend: finds what can never apply by committing one delivery,
 * then one operation, at a time, in queue order. A single-operation message that fails is rejected (the queue
 * dead-letters it); an operation out of a batch message is dead-lettered alone, confirmed by the broker, and the
 * rest of its message applies and is acknowledged. If a dead letter cannot be confirmed, the message is given back
 * whole (redelivered; the operation log skips what was applied).
 */
final class PoisonIsolation {
    private static final Logger log = LoggerFactory.getLogger(PoisonIsolation.class);
    static final String REASON = "could not be applied";

    private final String name;
    private final BatchCommitter committer;
    private final DeadLetterSink deadLetters;
    private final ConsumerMetrics metrics;

    PoisonIsolation(String name, BatchCommitter committer, DeadLetterSink deadLetters, ConsumerMetrics metrics) {
        this.name = name;
        this.committer = committer;
        this.deadLetters = deadLetters;
        this.metrics = metrics;
    }

    void isolate(List<DecodedDelivery> batch) throws InterruptedException {
        for (DecodedDelivery u : batch) {
            if (committer.commit(List.of(u), true)) {
                continue;
            }
            if (u.ops().size() == 1) {
                Operation op = u.ops().getFirst();
                log.error("{}: operation {} on key {} can never apply; dead-lettered", name, op.getId(), op.getKey());
                Acks.reject(u.delivery());
                metrics.deadLettered(DeadLetterReason.CANNOT_APPLY);
                continue;
            }
            isolateWithin(u);
        }
    }

    /** One operation at a time out of one batch message; the message is acknowledged once all are settled. */
    private void isolateWithin(DecodedDelivery u) throws InterruptedException {
        for (Operation op : u.ops()) {
            if (committer.commit(List.of(new DecodedDelivery(u.delivery(), List.of(op))), false)) {
                continue;
            }
            log.error("{}: operation {} on key {} can never apply; dead-lettered alone, the rest of its batch applies",
                    name, op.getId(), op.getKey());
            try {
                deadLetters.publish(op, REASON);
                metrics.deadLettered(DeadLetterReason.CANNOT_APPLY);
            } catch (IOException e) {
                log.warn("{}: could not dead-letter operation {} ({}); its batch will be redelivered", name,
                        op.getId(), e.getMessage());
                Acks.abandon(u.channel());
                return;
            }
        }
        Acks.ackAll(List.of(u));
    }
}
