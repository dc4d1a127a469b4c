package io.kvmesh.it;

import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.store.OplogRow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Watch streams and TTL expiry with 2 replicas × 2 consumers. */
class WatchAndTtlIT {
    private static final int BUFFER = 50;
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.empty("watch");
        stack.watchBuffer = BUFFER;
        stack.addReplica();
        stack.addReplica();
        stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
        stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    /** Collects a stream's events and how it ended. */
    static final class Collector implements StreamObserver<WatchResponse> {
        final List<WatchResponse> events = new CopyOnWriteArrayList<>();
        final AtomicReference<Throwable> error = new AtomicReference<>();

        @Override
        public void onNext(WatchResponse value) {
            events.add(value);
        }

        @Override
        public void onError(Throwable t) {
            error.set(t);
        }

        @Override
        public void onCompleted() {
        }
    }

    private static void put(int replica, String key, String value) {
        stack.client(replica).put(PutRequest.newBuilder().setKey(key).setValue(value).build());
    }

    @Test
    void watch_seesPutsAndDeletesInApplyOrder_onEveryReplica_withVersionsAndOperationIds() {
        Collector onReplica0 = new Collector();
        Collector onReplica1 = new Collector();
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("w/").build(), onReplica0);
        stack.asyncClient(1).watch(WatchRequest.newBuilder().setPrefix("w/").build(), onReplica1);
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.replica(0).isSubscribed());

        String first = stack.client(0).put(PutRequest.newBuilder().setKey("w/a").setValue("1").build()).getOperationId();
        put(1, "w/a", "2");
        put(0, "other/x", "not watched");
        stack.client(1).delete(DeleteRequest.newBuilder().setKey("w/a").build());
        put(0, "w/a", "3");

        for (Collector c : List.of(onReplica0, onReplica1)) {
            await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() >= 4);
            assertThat(c.events).extracting(WatchResponse::getType)
                    .containsExactly(EventType.PUT, EventType.PUT, EventType.DELETE, EventType.PUT);
            assertThat(c.events).extracting(WatchResponse::getVersion).containsExactly(1L, 2L, 3L, 4L);
            assertThat(c.events).extracting(WatchResponse::getValue).containsExactly("1", "2", "", "3");
            assertThat(c.events).allMatch(e -> e.getKey().equals("w/a") && !e.getOperationId().isEmpty());
            assertThat(c.events.getFirst().getOperationId()).isEqualTo(first);
            assertThat(c.error.get()).isNull();
        }
    }

    @Test
    void watch_fromStartVersion_sendsCurrentStateFirst_thenLiveChanges() {
        put(0, "resume/a", "a1");
        put(0, "resume/b", "b1");
        stack.client(0).put(PutRequest.newBuilder().setKey("resume/b").setValue("b2").setMode(WriteMode.SYNC).build());
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.store.find("resume/a").isPresent());

        Collector c = new Collector();
        stack.asyncClient(1).watch(WatchRequest.newBuilder().setPrefix("resume/").setStartVersion(2).build(), c);
        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() >= 1);
        assertThat(c.events.getFirst().getKey()).isEqualTo("resume/b"); // a is at version 1: below start_version
        assertThat(c.events.getFirst().getVersion()).isEqualTo(2);
        assertThat(c.events.getFirst().getValue()).isEqualTo("b2");

        put(0, "resume/a", "a2");
        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() >= 2);
        assertThat(c.events.get(1).getKey()).isEqualTo("resume/a");
        assertThat(c.events.get(1).getVersion()).isEqualTo(2);
    }

    @Test
    void slowWatcher_isClosedWithResourceExhausted_whileAFastOneKeepsUp() {
        Collector fast = new Collector();
        AtomicReference<Throwable> slowEnd = new AtomicReference<>();
        // a client that never asks for a message: its events pile up on the server
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("slow/").build(),
                new ClientResponseObserver<WatchRequest, WatchResponse>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<WatchRequest> requestStream) {
                        requestStream.disableAutoRequestWithInitial(0);
                    }

                    @Override
                    public void onNext(WatchResponse value) {
                    }

                    @Override
                    public void onError(Throwable t) {
                        slowEnd.set(t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("slow/").build(), fast);
        int writes = BUFFER + 30;
        for (int i = 0; i < writes; i++) {
            put(i % 2, "slow/k" + i, "v");
        }
        await().atMost(Duration.ofSeconds(15)).until(() -> slowEnd.get() != null);
        assertThat(Status.fromThrowable(slowEnd.get()).getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(Status.fromThrowable(slowEnd.get()).getDescription()).contains("too slow");
        await().atMost(Duration.ofSeconds(15)).until(() -> fast.events.size() == writes);
        assertThat(fast.error.get()).isNull();
    }

    @Test
    void ttl_expiredEntryIsInvisibleAtOnce_thenSweptWithAnExpireEvent() {
        Collector c = new Collector();
        stack.asyncClient(1).watch(WatchRequest.newBuilder().setPrefix("ttl/").build(), c);
        stack.client(0).put(PutRequest.newBuilder().setKey("ttl/k").setValue("short-lived")
                .setTtl(com.google.protobuf.Duration.newBuilder().setNanos(800_000_000)).setMode(WriteMode.SYNC).build());
        var got = stack.client(1).get(GetRequest.newBuilder().setKey("ttl/k").build());
        assertThat(got.getData().getValue()).isEqualTo("short-lived");
        assertThat(got.getData().hasExpireTime()).isTrue();

        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.stream().anyMatch(e -> e.getType() == EventType.EXPIRE));
        WatchResponse expire = c.events.stream().filter(e -> e.getType() == EventType.EXPIRE).findFirst().orElseThrow();
        assertThat(expire.getKey()).isEqualTo("ttl/k");
        assertThat(expire.getVersion()).isEqualTo(2);
        for (int r = 0; r < 2; r++) {
            int replica = r;
            assertThat(ReadWriteIT.codeOf(() -> stack.client(replica).get(GetRequest.newBuilder().setKey("ttl/k").build())))
                    .isEqualTo(Status.Code.NOT_FOUND);
        }
        assertThat(stack.client(0).list(ListRequest.newBuilder().setPrefix("ttl/").build()).getDataCount()).isZero();
        List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey("ttl/k"));
        assertThat(log).extracting(OplogRow::kind).containsExactly("PUT", "EXPIRE");
        assertThat(stack.store.find("ttl/k")).map(Entry::value).isEmpty();
    }

    @Test
    void ttl_hidesTheEntryFromTheMomentItExpires_evenBeforeTheSweep() throws Exception {
        stack.client(0).put(PutRequest.newBuilder().setKey("ttl/edge").setValue("v")
                .setTtl(com.google.protobuf.Duration.newBuilder().setSeconds(1)).setMode(WriteMode.SYNC).build());
        assertThat(stack.client(1).get(GetRequest.newBuilder().setKey("ttl/edge").build()).getSource()).isEqualTo("redis");
        // no consumer, so no sweeper: whatever hides the entry now is the read path alone
        stack.stopConsumers();
        try {
            Entry row = stack.store.find("ttl/edge").orElseThrow();
            await().atMost(Duration.ofSeconds(5)).until(() -> java.time.Instant.now().isAfter(row.expireTime()));
            for (int r = 0; r < 2; r++) {
                int replica = r;
                assertThat(ReadWriteIT.codeOf(() -> stack.client(replica).get(GetRequest.newBuilder().setKey("ttl/edge").build())))
                        .isEqualTo(Status.Code.NOT_FOUND);
            }
            assertThat(stack.client(0).list(ListRequest.newBuilder().setPrefix("ttl/edge").build()).getDataCount()).isZero();
            assertThat(stack.store.find("ttl/edge")).map(Entry::value).contains("v"); // not swept yet
        } finally {
            stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
            stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.store.find("ttl/edge").map(Entry::value).isEmpty());
    }
}
