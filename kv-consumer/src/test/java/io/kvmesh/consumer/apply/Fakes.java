package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.Operation;

import java.io.IOException;
import java.sql.SQLException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/** Stand-ins for the broker, PostgreSQL, Redis and the dead-letter exchange, recording what the applier does. */
final class Fakes {
    private Fakes() {
    }

    static Operation op(String key) {
        return Operation.newBuilder().setId("id-" + key).setKey(key).setKind(Operation.Kind.PUT).setValue("v")
                .setAcceptTimeMicros(1).build();
    }

    /** A partition channel that records acks, rejects, aborts and events. */
    static final class Channel implements PartitionChannel {
        final int partition;
        boolean open = true;
        final List<Long> acks = new ArrayList<>();
        final List<Long> rejects = new ArrayList<>();
        final List<ChangeEvent> events = new ArrayList<>();
        int aborts;
        long nextTag = 1;

        Channel(int partition) {
            this.partition = partition;
        }

        /** A message of one operation (the format of replicas older than group commit). */
        Delivery single(String key) {
            return new Delivery(this, nextTag++, false, OperationCodec.CONTENT_TYPE, OperationCodec.encode(op(key)));
        }

        /** A message of several operations. */
        Delivery batch(String... keys) {
            List<Operation> ops = java.util.Arrays.stream(keys).map(Fakes::op).toList();
            return new Delivery(this, nextTag++, false, OperationCodec.BATCH_CONTENT_TYPE,
                    OperationCodec.encodeBatch(ops));
        }

        Delivery garbage() {
            return new Delivery(this, nextTag++, false, OperationCodec.BATCH_CONTENT_TYPE, new byte[] {1, 2, 3});
        }

        @Override
        public int partition() {
            return partition;
        }

        @Override
        public boolean isOpen() {
            return open;
        }

        @Override
        public void ackUpTo(long tag) {
            acks.add(tag);
        }

        @Override
        public void reject(long tag) {
            rejects.add(tag);
        }

        @Override
        public void abort() {
            aborts++;
            open = false;
        }

        @Override
        public boolean publishEvents(List<ChangeEvent> batch) {
            events.addAll(batch);
            return true;
        }
    }

    /**
     * PostgreSQL: fails with a transient error (connection lost) the first {@code outages} times, fails for good
     * whenever a batch holds a poison key, else applies everything and records each committed batch's keys.
     */
    static class Applier implements io.kvmesh.consumer.apply.Applier {
        final Set<String> poison;
        final AtomicInteger outages;
        final List<List<String>> committed = new ArrayList<>();
        int calls;

        Applier(Set<String> poison, int outages) {
            this.poison = poison;
            this.outages = new AtomicInteger(outages);
        }

        @Override
        public ApplyResult apply(List<Operation> ops, Instant now) {
            calls++;
            if (outages.getAndDecrement() > 0) {
                throw new IllegalStateException("connection lost", new SQLException("terminating connection", "08006"));
            }
            if (ops.stream().anyMatch(op -> poison.contains(op.getKey()))) {
                throw new IllegalStateException("constraint", new SQLException("value too long", "22001"));
            }
            List<String> keys = ops.stream().map(Operation::getKey).toList();
            committed.add(keys);
            List<Entry> states = ops.stream().map(op -> new Entry(op.getKey(), op.getValue(), 1, now, now, null))
                    .toList();
            List<ChangeEvent> events = ops.stream().map(op -> ChangeEvent.newBuilder().setOperationId(op.getId())
                    .setKey(op.getKey()).build()).toList();
            return new ApplyResult(states, events, ops.size(), 0, 0);
        }

        List<String> committedKeys() {
            return committed.stream().flatMap(List::stream).toList();
        }
    }

    static final class Cache implements CacheSink {
        final List<String> written = new ArrayList<>();

        @Override
        public void update(Collection<Entry> states) {
            states.forEach(e -> written.add(e.key()));
        }
    }

    static final class DeadLetters implements DeadLetterSink {
        final boolean brokerDown;
        final List<String> published = new ArrayList<>();

        DeadLetters(boolean brokerDown) {
            this.brokerDown = brokerDown;
        }

        @Override
        public void publish(Operation op, String reason) throws IOException {
            if (brokerDown) {
                throw new IOException("the broker did not confirm a dead letter");
            }
            published.add(op.getKey());
        }
    }
}
