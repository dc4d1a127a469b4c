package io.kvmesh.it;

import io.grpc.StatusRuntimeException;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.KeyValueInput;
import io.kvmesh.api.v1.PutRequest;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Bad input gets INVALID_ARGUMENT and publishes nothing (no consumer runs, so the queues show every publish). */
class InvalidInputIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("invalid", 1, 0);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    @Test
    void invalidWrites_areRejectedAndNothingIsPublished() throws Exception {
        var c = stack.client(0);
        assertInvalid(() -> c.put(PutRequest.newBuilder().setValue("v").build()), "key must not be empty");
        assertInvalid(() -> c.put(PutRequest.newBuilder().setKey("k".repeat(1025)).setValue("v").build()), "limit is 1024");
        assertInvalid(() -> c.put(PutRequest.newBuilder().setKey("k").setValue("x".repeat(1024 * 1024 + 1)).build()),
                "limit is 1048576");
        assertInvalid(() -> c.put(PutRequest.newBuilder().setKey("bad\nkey").setValue("v").build()), "control characters");
        assertInvalid(() -> c.put(PutRequest.newBuilder().setKey("a").setValue("v")
                .setData(KeyValueInput.newBuilder().setKey("b").setValue("v")).build()), "not both");
        assertInvalid(() -> c.delete(DeleteRequest.newBuilder().build()), "key must not be empty");
        assertInvalid(() -> c.get(GetRequest.newBuilder().setKey("").build()), "key must not be empty");
        assertThat(stack.readyMessages()).isZero();

        // the same count sees a valid write, so the zero above means something
        c.put(PutRequest.newBuilder().setKey("k").setValue("v").build());
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.readyMessages() == 1);
    }

    private static void assertInvalid(Runnable call, String message) {
        assertThatThrownBy(call::run).isInstanceOf(StatusRuntimeException.class)
                .hasMessageContaining("INVALID_ARGUMENT").hasMessageContaining(message);
    }
}
