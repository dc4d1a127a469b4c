package io.kvmesh.it;

import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.service.KvServiceServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A replica binds its change-events queue only while a SYNC write waits or a Watch stream is open (and for a short
 * idle time after): ASYNC writes alone do not keep it bound, and the first SYNC write or Watch after an idle spell
 * still sees its event.
 */
class EventsOnDemandIT {
    private static final Duration IDLE = Duration.ofMillis(400);
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.empty("eventsondemand");
        stack.eventsIdle = IDLE;
        stack.addReplica();
        stack.addConsumer(AfterCommit.NONE);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    private static KvServiceServer replica() {
        return stack.replica(0);
    }

    private static void awaitUnbound() {
        await().atMost(Duration.ofSeconds(10)).until(() -> !replica().eventsBound());
    }

    @Test
    void syncWrite_afterAnIdleSpell_bindsFirst_andIsAnsweredApplied_asyncWritesLeaveItUnbound() {
        awaitUnbound();
        for (int i = 1; i <= 3; i++) {
            var r = stack.client(0).put(PutRequest.newBuilder().setKey("ondemand/sync").setValue("v" + i)
                    .setMode(WriteMode.SYNC).build());
            assertThat(r.getStatus()).as("SYNC write %d", i).isEqualTo("applied");
            assertThat(r.getVersion()).isEqualTo(i);
            awaitUnbound();
        }
        for (int i = 0; i < 20; i++) {
            stack.client(0).put(PutRequest.newBuilder().setKey("ondemand/async" + i).setValue("v").build());
        }
        assertThat(replica().eventsBound()).as("ASYNC writes do not bind the events queue").isFalse();
    }

    @Test
    void watch_openedWhileUnbound_seesTheNextChange_andKeepsTheQueueBoundWhileOpen() {
        awaitUnbound();
        WatchAndTtlIT.Collector c = new WatchAndTtlIT.Collector();
        var ctx = io.grpc.Context.current().withCancellation();
        try {
            ctx.run(() -> stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("ondemand/w").build(), c));
            await().atMost(Duration.ofSeconds(10)).until(() -> replica().eventsBound());
            // an open stream keeps the binding past the idle time: bound throughout three idle times
            await().during(IDLE.multipliedBy(3)).atMost(IDLE.multipliedBy(6)).until(() -> replica().eventsBound());
            stack.client(0).put(PutRequest.newBuilder().setKey("ondemand/w1").setValue("seen").build());
            await().atMost(Duration.ofSeconds(10)).until(() -> c.events.stream()
                    .anyMatch(e -> e.getKey().equals("ondemand/w1")));
            assertThat(c.events).filteredOn(e -> e.getKey().equals("ondemand/w1"))
                    .extracting(WatchResponse::getValue).containsExactly("seen");
        } finally {
            ctx.cancel(null);
        }
        awaitUnbound();
    }
}
