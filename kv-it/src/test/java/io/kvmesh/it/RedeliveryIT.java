package io.kvmesh.it;

import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.consumer.KvConsumer;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.store.OplogRow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** A consumer that dies between commit and ack: the operation is redelivered to the standby and applied once. */
class RedeliveryIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("redelivery", 1, 0);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    @Test
    void consumerDiesRightAfterCommit_beforeTheCache_standbyBringsTheCacheUpToDate() {
        stack.stopConsumers();
        AtomicReference<KvConsumer> victim = new AtomicReference<>();
        AtomicBoolean armed = new AtomicBoolean();
        AtomicBoolean crashed = new AtomicBoolean();
        victim.set(stack.addConsumer(ops -> {
            if (armed.get() && crashed.compareAndSet(false, true)) {
                victim.get().abortBrokerConnection();
                throw new IllegalStateException("simulated crash after commit, before the cache and the ack");
            }
        }));
        KvConsumer standby = stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
        assertThat(stack.client(0).put(PutRequest.newBuilder().setKey("cached-once").setValue("v1")
                .setMode(io.kvmesh.api.v1.WriteMode.SYNC).build()).getVersion()).isEqualTo(1);
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.client(0).get(io.kvmesh.api.v1.GetRequest.newBuilder()
                .setKey("cached-once").build()).getSource().equals("redis"));

        armed.set(true);
        var v2 = stack.client(0).put(PutRequest.newBuilder().setKey("cached-once").setValue("v2")
                .setMode(io.kvmesh.api.v1.WriteMode.SYNC).build());
        assertThat(crashed).isTrue();
        assertThat(v2.getStatus()).isEqualTo("applied"); // the standby's replay of the committed operation
        assertThat(v2.getVersion()).isEqualTo(2);
        for (int i = 0; i < 10; i++) {
            var read = stack.client(0).get(io.kvmesh.api.v1.GetRequest.newBuilder().setKey("cached-once").build());
            assertThat(read.getData().getVersion()).as("read %d from %s", i, read.getSource()).isEqualTo(2);
        }
        assertThat(standby.duplicateCount()).isGreaterThanOrEqualTo(1);
        stack.stopConsumers();
    }

    @Test
    void consumerDiesBetweenCommitAndAck_standbyTakesOver_operationAppliedOnce() throws Exception {
        AtomicReference<KvConsumer> victim = new AtomicReference<>();
        AtomicBoolean crashed = new AtomicBoolean();
        victim.set(stack.addConsumer(ops -> {
            if (crashed.compareAndSet(false, true)) {
                victim.get().abortBrokerConnection(); // committed, not acknowledged
            }
        }));
        KvConsumer standby = stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);

        String id = stack.client(0).put(PutRequest.newBuilder().setKey("once").setValue("v").build()).getOperationId();

        await().atMost(Duration.ofSeconds(30)).until(() ->
                victim.get().duplicateCount() + standby.duplicateCount() >= 1);
        assertThat(crashed).isTrue();
        assertThat(stack.store.find("once")).map(Entry::version).contains(1L);
        List<OplogRow> ops = stack.store.inTransaction(dao -> dao.operationsOfKey("once"));
        assertThat(ops).extracting(OplogRow::id).containsExactly(id);
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.readyMessages() == 0);

        // the partition keeps flowing afterwards, still without doubles
        stack.client(0).put(PutRequest.newBuilder().setKey("once").setValue("v2").build());
        await().atMost(Duration.ofSeconds(20)).until(() ->
                stack.store.find("once").map(Entry::version).orElse(0L) == 2L);
        List<OplogRow> after = stack.store.inTransaction(dao -> dao.operationsOfKey("once"));
        assertThat(after).hasSize(2);
    }
}
