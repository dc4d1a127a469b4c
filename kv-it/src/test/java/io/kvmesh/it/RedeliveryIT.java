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
