package io.kvmesh.consumer.apply;

import io.kvmesh.consumer.metrics.ConsumerMetrics;
import io.kvmesh.core.retry.Backoff;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.params.provider.Arguments.arguments;

/**
 * The worker's handling of failures, with fakes for broker, database and dead-letter exchange: transient database
 * failures are retried and nothing is dead-lettered; a poison operation is dead-lettered alone and the rest of its
 * batch applies; nothing is acknowledged that was not applied.
 */
class ApplyWorkerTest {
    private static final Clock CLOCK = Clock.fixed(Instant.parse("2026-11-25T12:00:00Z"), ZoneOffset.UTC);

    /** What happened, for comparison with the table. */
    record Seen(List<String> committed, List<Long> acks, List<Long> rejects, List<String> deadLettered, int aborts,
                long retries, double cannotApply, double undecodable) {
    }

    private static Seen seen(List<String> committed, List<Long> acks, List<Long> rejects, List<String> deadLettered,
                             int aborts, long retries, double cannotApply, double undecodable) {
        return new Seen(committed, acks, rejects, deadLettered, aborts, retries, cannotApply, undecodable);
    }

    /**
     * name; messages on one partition ("a" one operation, "b,c" a batch message, "!" undecodable); poison keys;
     * transient database failures before it answers; whether the broker fails to confirm dead letters; expected.
     */
    static Stream<Arguments> table() {
        return Stream.of(
                arguments("all apply in one transaction", List.of("a", "b", "c"), Set.of(), 0, false,
                        seen(List.of("a", "b", "c"), List.of(3L), List.of(), List.of(), 0, 0, 0, 0)),
                arguments("batch messages and single ones together", List.of("a", "b,c", "d"), Set.of(), 0, false,
                        seen(List.of("a", "b", "c", "d"), List.of(3L), List.of(), List.of(), 0, 0, 0, 0)),
                arguments("database down twice: held and retried, nothing dead-lettered", List.of("a", "b"),
                        Set.of(), 2, false,
                        seen(List.of("a", "b"), List.of(2L), List.of(), List.of(), 0, 2, 0, 0)),
                arguments("poison single-operation message: rejected alone", List.of("a", "p", "c"),
                        Set.of("p"), 0, false,
                        seen(List.of("a", "c"), List.of(1L, 3L), List.of(2L), List.of(), 0, 0, 1, 0)),
                arguments("poison operation in a batch message: dead-lettered alone, the rest applies",
                        List.of("a", "b,p,d"), Set.of("p"), 0, false,
                        seen(List.of("a", "b", "d"), List.of(1L, 2L), List.of(), List.of("p"), 0, 0, 1, 0)),
                arguments("two poison operations in one batch message", List.of("p,b,q"), Set.of("p", "q"), 0, false,
                        seen(List.of("b"), List.of(1L), List.of(), List.of("p", "q"), 0, 0, 2, 0)),
                arguments("dead letter not confirmed: the message is given back whole", List.of("a", "b,p,d"),
                        Set.of("p"), 0, true,
                        seen(List.of("a", "b"), List.of(1L), List.of(), List.of(), 1, 0, 0, 0)),
                arguments("outage, then poison: retried, then isolated", List.of("a", "p", "c"), Set.of("p"), 1,
                        false,
                        seen(List.of("a", "c"), List.of(1L, 3L), List.of(2L), List.of(), 0, 1, 1, 0)),
                arguments("undecodable message: rejected, the others apply", List.of("a", "!", "c"), Set.of(), 0,
                        false,
                        seen(List.of("a", "c"), List.of(3L), List.of(2L), List.of(), 0, 0, 0, 1)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("table")
    void poisonAndRetryHandling(String name, List<String> messages, Set<String> poison, int outages,
                                boolean deadLetterBrokerDown, Seen expected) throws InterruptedException {
        Fakes.Channel channel = new Fakes.Channel(0);
        Fakes.Applier applier = new Fakes.Applier(poison, outages);
        Fakes.DeadLetters deadLetters = new Fakes.DeadLetters(deadLetterBrokerDown);
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ConsumerMetrics metrics = new ConsumerMetrics(registry, 1);
        ApplyWorker worker = worker(applier, new Fakes.Cache(), deadLetters, metrics);
        for (String m : messages) {
            worker.offer(m.equals("!") ? channel.garbage()
                    : m.contains(",") ? channel.batch(m.split(",")) : channel.single(m));
        }

        worker.runOnce(Duration.ZERO);

        Seen actual = seen(applier.committedKeys(), channel.acks, channel.rejects, deadLetters.published,
                channel.aborts, metrics.retries(),
                registry.get("kvmesh.consumer.dead.lettered").tag("reason", "cannot_apply").counter().count(),
                registry.get("kvmesh.consumer.dead.lettered").tag("reason", "undecodable").counter().count());
        assertThat(actual).isEqualTo(expected);
        assertThat(worker.waiting()).isZero();
    }

    @Test
    void closedChannel_nothingAppliedNorAcked_theBrokerRedelivers() throws InterruptedException {
        Fakes.Channel channel = new Fakes.Channel(0);
        Fakes.Applier applier = new Fakes.Applier(Set.of(), 0);
        ApplyWorker worker = worker(applier, new Fakes.Cache(), new Fakes.DeadLetters(false),
                new ConsumerMetrics(new SimpleMeterRegistry(), 1));
        worker.offer(channel.single("a"));
        channel.open = false;

        worker.runOnce(Duration.ZERO);

        assertThat(applier.calls).isZero();
        assertThat(channel.acks).isEmpty();
    }

    @Test
    void channelClosingDuringAnOutage_dropsOnlyThatPartitionsDeliveries() throws InterruptedException {
        Fakes.Channel p0 = new Fakes.Channel(0);
        Fakes.Channel p1 = new Fakes.Channel(1);
        Fakes.Applier applier = new Fakes.Applier(Set.of(), 0) {
            @Override
            public ApplyResult apply(List<io.kvmesh.queue.v1.Operation> ops, Instant now) {
                if (calls == 0) {
                    p1.open = false; // the partition moved to another consumer while the database was down
                    calls++;
                    throw new IllegalStateException(new java.sql.SQLException("down", "08006"));
                }
                return super.apply(ops, now);
            }
        };
        ApplyWorker worker = worker(applier, new Fakes.Cache(), new Fakes.DeadLetters(false),
                new ConsumerMetrics(new SimpleMeterRegistry(), 2));
        worker.offer(p0.single("a"));
        worker.offer(p1.single("b"));
        worker.offer(p0.single("c"));

        worker.runOnce(Duration.ZERO);

        assertThat(applier.committedKeys()).containsExactly("a", "c");
        assertThat(p0.acks).containsExactly(2L);
        assertThat(p1.acks).isEmpty();
    }

    @Test
    void partitionsShareATransaction_inArrivalOrder_eachAckedOnItsOwnChannel() throws InterruptedException {
        Fakes.Channel p0 = new Fakes.Channel(0);
        Fakes.Channel p1 = new Fakes.Channel(1);
        Fakes.Applier applier = new Fakes.Applier(Set.of(), 0);
        Fakes.Cache cache = new Fakes.Cache();
        ApplyWorker worker = worker(applier, cache, new Fakes.DeadLetters(false),
                new ConsumerMetrics(new SimpleMeterRegistry(), 2));
        worker.offer(p0.single("a"));
        worker.offer(p1.batch("b", "c"));
        worker.offer(p0.single("d"));
        worker.offer(p1.single("e"));

        worker.runOnce(Duration.ZERO);

        assertThat(applier.committed).containsExactly(List.of("a", "b", "c", "d", "e"));
        assertThat(p0.acks).containsExactly(2L);
        assertThat(p1.acks).containsExactly(2L);
        assertThat(cache.written).containsExactly("a", "b", "c", "d", "e");
        // the events go on the channel of the batch's last delivery
        assertThat(p1.events).hasSize(5);
    }

    @Test
    void batchSize_boundsATransaction_butNeverSplitsAMessage() throws InterruptedException {
        Fakes.Channel channel = new Fakes.Channel(0);
        Fakes.Applier applier = new Fakes.Applier(Set.of(), 0);
        ApplyWorker worker = new ApplyWorker("test", applier, new Fakes.Cache(), new Fakes.DeadLetters(false),
                AfterCommit.NONE, CLOCK, 2, Backoff.of(1, 2), new ConsumerMetrics(new SimpleMeterRegistry(), 1));
        worker.offer(channel.single("a"));
        worker.offer(channel.batch("b", "c"));
        worker.offer(channel.single("d"));

        worker.runOnce(Duration.ZERO);
        worker.runOnce(Duration.ZERO);

        assertThat(applier.committed).containsExactly(List.of("a", "b", "c"), List.of("d"));
        assertThat(channel.acks).containsExactly(2L, 3L);
    }

    private static ApplyWorker worker(Fakes.Applier applier, Fakes.Cache cache, Fakes.DeadLetters deadLetters,
                                      ConsumerMetrics metrics) {
        return new ApplyWorker("test", applier, cache, deadLetters, AfterCommit.NONE, CLOCK, 256, Backoff.of(1, 2),
                metrics);
    }
}
