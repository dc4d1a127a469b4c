package io.kvmesh.it;

import com.rabbitmq.client.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.consumer.KvConsumer;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.queue.v1.Operation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Group commit: replicas publish batches of operations, one message per partition per broker round trip; the applier
 * applies batch messages with every guarantee of single ones (order per key, exactly once, redelivery after a crash,
 * a poison operation dead-lettered alone) and still applies single-operation messages of older replicas.
 */
class BatchMessagesIT {
    private static Stack stack;
    private static Partitioner partitioner;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("batches", 1, 0);
        partitioner = new Partitioner(stack.topology.partitions());
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    private static Operation put(String key, String value) {
        return Operation.newBuilder().setId(UUID.randomUUID().toString()).setKind(Operation.Kind.PUT).setKey(key)
                .setValue(value).setAcceptTimeMicros(System.currentTimeMillis() * 1000).build();
    }

    /** Keys that all map to one partition, so one message can carry them. */
    private static List<String> keysInOnePartition(String prefix, int n) {
        List<String> keys = new ArrayList<>();
        int partition = partitioner.partitionOf(prefix + 0);
        for (int i = 0; keys.size() < n; i++) {
            if (partitioner.partitionOf(prefix + i) == partition) {
                keys.add(prefix + i);
            }
        }
        return keys;
    }

    private static void publishBatch(List<Operation> ops) throws Exception {
        stack.publishRaw(partitioner.partitionOf(ops.getFirst().getKey()), OperationCodec.BATCH_CONTENT_TYPE,
                OperationCodec.encodeBatch(ops));
    }

    private static long version(String key) {
        return stack.store.find(key).map(Entry::version).orElse(0L);
    }

    @Test
    void concurrentWrites_areCoalescedIntoFewerMessages_andAllApplyInOrder() throws Exception {
        stack.stopConsumers(); // the queue keeps what the replica publishes, so its messages can be counted
        String key = "group/k";
        int writes = 200;
        List<CompletableFuture<PutResponse>> answers = new ArrayList<>();
        KeyValueGrpc.KeyValueStub client = stack.asyncClient(0);
        for (int i = 0; i < writes; i++) {
            CompletableFuture<PutResponse> f = new CompletableFuture<>();
            client.put(PutRequest.newBuilder().setKey(key).setValue("v" + i).build(), Stack.into(f));
            answers.add(f);
        }
        answers.forEach(f -> assertThat(f.join().getStatus()).isEqualTo("queued"));
        long messages = stack.readyMessages();
        assertThat(messages).as("broker messages for %d writes", writes).isBetween(1L, writes - 1L);

        stack.addConsumer(AfterCommit.NONE);
        await().atMost(Duration.ofSeconds(20)).until(() -> version(key) == writes);
        List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey(key));
        assertThat(log).hasSize(writes).extracting(OplogRow::version).doesNotHaveDuplicates();
    }

    @Test
    void batchOfMixedKeys_appliesEachKeyInOrder() throws Exception {
        List<String> keys = keysInOnePartition("mixed/", 3);
        List<Operation> ops = new ArrayList<>();
        for (int round = 1; round <= 3; round++) {
            for (String k : keys) {
                ops.add(put(k, k + "@" + round));
            }
        }
        publishBatch(ops.subList(0, 5));
        publishBatch(ops.subList(5, 9));
        ensureConsumer();
        for (String k : keys) {
            await().atMost(Duration.ofSeconds(15)).until(() -> version(k) == 3);
            assertThat(stack.store.find(k)).map(Entry::value).contains(k + "@3");
        }
    }

    @Test
    void poisonOperationInsideABatch_isDeadLetteredAlone_andTheRestApplies() throws Exception {
        ensureConsumer();
        stack.takeDeadLetters();
        List<String> keys = keysInOnePartition("poison/", 3);
        // a NUL character can never be stored in a PostgreSQL text column (the replicas refuse it; a raw message can
        // carry it)
        Operation poison = put(keys.get(1), "bad\u0000value");
        publishBatch(List.of(put(keys.get(0), "a"), poison, put(keys.get(2), "c")));

        await().atMost(Duration.ofSeconds(20)).until(() -> version(keys.get(0)) == 1 && version(keys.get(2)) == 1);
        assertThat(stack.store.find(keys.get(1))).isEmpty();
        List<GetResponse> dead = new ArrayList<>();
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            dead.addAll(stack.takeDeadLetters());
            return !dead.isEmpty();
        });
        assertThat(dead).hasSize(1);
        Operation deadOp = OperationCodec.decodeMessage(dead.getFirst().getProps().getContentType(),
                dead.getFirst().getBody()).getFirst();
        assertThat(deadOp.getId()).isEqualTo(poison.getId());
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.readyMessages() == 0);
        // the partition keeps flowing
        publishBatch(List.of(put(keys.get(0), "a2")));
        await().atMost(Duration.ofSeconds(15)).until(() -> version(keys.get(0)) == 2);
    }

    @Test
    void olderSingleOperationMessages_stillApply() throws Exception {
        ensureConsumer();
        Operation op = put("legacy/k", "from an older replica");
        stack.publishRaw(partitioner.partitionOf(op.getKey()), OperationCodec.CONTENT_TYPE, OperationCodec.encode(op));
        await().atMost(Duration.ofSeconds(15)).until(() -> version("legacy/k") == 1);
        assertThat(stack.store.find("legacy/k")).map(Entry::value).contains("from an older replica");
    }

    @Test
    void consumerDiesBetweenCommitAndAckOfABatch_standbyAppliesItOnce() throws Exception {
        stack.stopConsumers();
        AtomicReference<KvConsumer> victim = new AtomicReference<>();
        AtomicBoolean crashed = new AtomicBoolean();
        victim.set(stack.addConsumer(ops -> {
            if (ops.size() > 1 && crashed.compareAndSet(false, true)) {
                victim.get().abortBrokerConnection(); // committed, not acknowledged
            }
        }));
        KvConsumer standby = stack.addConsumer(AfterCommit.NONE);
        List<String> keys = keysInOnePartition("crash/", 4);
        List<Operation> ops = keys.stream().map(k -> put(k, "once")).toList();
        publishBatch(ops);

        await().atMost(Duration.ofSeconds(30)).until(() -> crashed.get()
                && victim.get().duplicateCount() + standby.duplicateCount() >= ops.size());
        for (String k : keys) {
            assertThat(version(k)).isEqualTo(1);
            List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey(k));
            assertThat(log).hasSize(1);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.readyMessages() == 0);
        stack.stopConsumers();
    }

    private static void ensureConsumer() {
        if (!stack.hasConsumers()) {
            stack.addConsumer(AfterCommit.NONE);
        }
    }
}
