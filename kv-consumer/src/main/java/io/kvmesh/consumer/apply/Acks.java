package io.kvmesh.consumer.apply;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the applier tells the broker about deliveries: done (ack, only after the work is durable), dead-letter one
 * (reject), or give everything back (abort the channel). A failure here never loses anything: an unacknowledged
 * delivery is redelivered, and the operation log recognises what was applied.
 */
final class Acks {
    private static final Logger log = LoggerFactory.getLogger(Acks.class);

    private Acks() {
    }

    /** Acks, on each partition channel of the batch, everything up to that channel's last delivery in it. */
    static void ackAll(List<DecodedDelivery> units) {
        Map<PartitionChannel, Long> last = new IdentityHashMap<>();
        for (DecodedDelivery u : units) {
            last.merge(u.channel(), u.delivery().tag(), Math::max);
        }
        last.forEach((channel, tag) -> {
            try {
                channel.ackUpTo(tag);
            } catch (IOException | RuntimeException e) {
                log.info("could not ack partition {} up to {} ({}); redelivery will follow", channel.partition(), tag,
                        e.getMessage());
            }
        });
    }

    /** Dead-letters one delivery through the queue's dead-letter exchange. */
    static void reject(Delivery d) {
        try {
            d.channel().reject(d.tag());
        } catch (IOException | RuntimeException e) {
            log.info("could not reject delivery {} ({}); it will be redelivered", d.tag(), e.getMessage());
        }
    }

    /** Gives back every unacknowledged delivery of the channel. */
    static void abandon(PartitionChannel channel) {
        try {
            if (channel.isOpen()) {
                channel.abort();
            }
        } catch (RuntimeException e) {
            log.debug("abort", e);
        }
    }
}
