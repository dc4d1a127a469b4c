package io.kvmesh.it;

import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.core.queue.PublishBatching;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * KVMESH_PUBLISH_LINGER_US: an idle lane sends a write at once; a lane that sent recently waits the linger before its
 * next message, so writes that arrive one after another within it share that message. Here the linger is long
 * (500 ms) and ten writes are issued 10 ms apart right after the first write's confirm: without the linger each would
 * leave in a message of its own.
 */
class PublishLingerIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.empty("linger");
        stack.publishing = new PublishBatching(2, 1, 256, 1 << 20, 500_000);
        stack.addReplica();
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    @Test
    void writesArrivingWithinTheLinger_ofABusyLane_shareOneMessage_andAllApply() throws Exception {
        String key = "linger/k";   // one key: one partition, one lane
        KeyValueGrpc.KeyValueBlockingStub blocking = stack.client(0);
        assertThat(blocking.put(PutRequest.newBuilder().setKey(key).setValue("v0").build()).getStatus())
                .as("an idle lane sends at once").isEqualTo("queued");
        assertThat(stack.readyMessages()).isEqualTo(1);

        KeyValueGrpc.KeyValueStub client = stack.asyncClient(0);
        List<CompletableFuture<PutResponse>> answers = new ArrayList<>();
        for (int i = 1; i <= 10; i++) {
            CompletableFuture<PutResponse> f = new CompletableFuture<>();
            client.put(PutRequest.newBuilder().setKey(key).setValue("v" + i).build(), Stack.into(f));
            answers.add(f);
            // the arrival pattern under test, not a wait for a result: writes one after another within the linger
            Thread.sleep(10);
        }
        answers.forEach(f -> assertThat(f.join().getStatus()).isEqualTo("queued"));
        assertThat(stack.readyMessages()).as("the ten later writes in one message").isEqualTo(2);

        stack.addConsumer(AfterCommit.NONE);
        await().atMost(Duration.ofSeconds(20)).until(() -> stack.store.find(key)
                .map(e -> e.version() == 11 && e.value().equals("v10")).orElse(false));
    }
}
