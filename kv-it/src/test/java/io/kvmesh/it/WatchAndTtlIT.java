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
import io.kvmesh.service.watch.WatchLimits;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;
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
    private static final long WATCHER_BYTES = 2 << 20;
    private static final long REPLICA_BYTES = 3 << 20;
    private static final String BIG = "x".repeat(256 << 10);
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.empty("watch");
        stack.watchLimits = new WatchLimits(BUFFER, WATCHER_BYTES, REPLICA_BYTES, Duration.ofMillis(300));
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
        String b2 = stack.client(0).put(PutRequest.newBuilder().setKey("resume/b").setValue("b2")
                .setMode(WriteMode.SYNC).build()).getOperationId();
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.store.find("resume/a").isPresent());

        Collector c = new Collector();
        stack.asyncClient(1).watch(WatchRequest.newBuilder().setPrefix("resume/").setStartVersion(2).build(), c);
        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() >= 1);
        assertThat(c.events.getFirst().getKey()).isEqualTo("resume/b"); // a is at version 1: below start_version
        assertThat(c.events.getFirst().getVersion()).isEqualTo(2);
        assertThat(c.events.getFirst().getValue()).isEqualTo("b2");
        assertThat(c.events.getFirst().getOperationId()).isEqualTo(b2); // as the live event said

        put(0, "resume/a", "a2");
        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() >= 2);
        assertThat(c.events.get(1).getKey()).isEqualTo("resume/a");
        assertThat(c.events.get(1).getVersion()).isEqualTo(2);
    }

    @Test
    void slowWatcher_isClosedWithResourceExhausted_whileAFastOneKeepsUp() {
        Collector fast = new Collector();
        // a client that never asks for a message: its events pile up on the server
        AtomicReference<Throwable> slowEnd = neverReading(0, "slow/");
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

    /** Opens a Watch whose client never asks for a message; its end (status) lands in the returned reference. */
    private static AtomicReference<Throwable> neverReading(int replica, String prefix) {
        AtomicReference<Throwable> end = new AtomicReference<>();
        stack.asyncClient(replica).watch(WatchRequest.newBuilder().setPrefix(prefix).build(),
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
                        end.set(t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        return end;
    }

    @Test
    void slowWatcher_ofLargeValues_isClosedByItsByteBound_andTheReplicaKeepsDoingItsJob() {
        int open = stack.replica(0).watchHub().size();
        AtomicReference<Throwable> slow = neverReading(0, "big/");
        Collector fast = new Collector();
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("big/").build(), fast);
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.replica(0).watchHub().size() >= open + 2);
        int writes = 20; // 5 MiB in all: far fewer events than the event bound, far more bytes than the byte bound
        for (int i = 0; i < writes; i++) {
            put(i % 2, "big/k" + i, BIG);
        }
        await().atMost(Duration.ofSeconds(15)).until(() -> slow.get() != null);
        assertThat(Status.fromThrowable(slow.get()).getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(Status.fromThrowable(slow.get()).getDescription()).contains("too slow");
        await().atMost(Duration.ofSeconds(15)).until(() -> fast.events.size() == writes);
        assertThat(fast.error.get()).isNull();
        // what the slow client held is released, and SYNC writes (which need the event stream) still complete
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.replica(0).watchHub().bufferedBytes() == 0);
        assertThat(stack.client(0).put(PutRequest.newBuilder().setKey("big/after").setValue("v")
                .setMode(WriteMode.SYNC).build()).getStatus()).isEqualTo("applied");
        assertThat(stack.replica(0).isServing()).isTrue();
    }

    @Test
    void manySlowWatchers_areShedSoTheReplicaNeverHoldsMoreThanItsBound() {
        int open = stack.replica(1).watchHub().size();
        List<AtomicReference<Throwable>> slow = List.of(neverReading(1, "shed/"), neverReading(1, "shed/"),
                neverReading(1, "shed/"));
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.replica(1).watchHub().size() >= open + 3);
        long most = 0;
        for (int i = 0; i < 6; i++) { // 1.5 MiB for each watcher: under its own bound, 4.5 MiB together
            stack.client(0).put(PutRequest.newBuilder().setKey("shed/k" + i).setValue(BIG).setMode(WriteMode.SYNC)
                    .build());
            most = Math.max(most, stack.replica(1).watchHub().bufferedBytes());
        }
        // at most one event over the bound: it is enforced after each event is queued
        assertThat(most).isLessThanOrEqualTo(REPLICA_BYTES + BIG.length() + 1024);
        await().atMost(Duration.ofSeconds(10)).until(() -> slow.stream().anyMatch(r -> r.get() != null));
        Throwable first = slow.stream().map(AtomicReference::get).filter(t -> t != null).findFirst().orElseThrow();
        assertThat(Status.fromThrowable(first).getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(Status.fromThrowable(first).getDescription()).contains("this replica holds more than");
    }

    @Test
    void idleWatch_withProgressNotify_getsProgressEvents_andOneWithoutGetsNone() {
        Collector withProgress = new Collector();
        Collector without = new Collector();
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("quiet/").setProgressNotify(true).build(),
                withProgress);
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("quiet/").build(), without);
        await().atMost(Duration.ofSeconds(10)).until(() -> withProgress.events.size() >= 3);
        assertThat(withProgress.events).allSatisfy(e -> {
            assertThat(e.getType()).isEqualTo(EventType.PROGRESS);
            assertThat(e.getKey()).isEmpty();
            assertThat(e.getTime().getSeconds()).isPositive();
        });
        put(0, "quiet/k", "v");
        await().atMost(Duration.ofSeconds(10)).until(() -> without.events.size() == 1
                && withProgress.events.stream().anyMatch(e -> e.getType() == EventType.PUT));
        assertThat(without.events).extracting(WatchResponse::getType).containsExactly(EventType.PUT);
        assertThat(withProgress.error.get()).isNull();
        assertThat(without.error.get()).isNull();
    }

    @Test
    void lostEventStream_isSubscribedAgainByItself_andSyncWritesComplete() {
        stack.replica(1).dropEventSubscription();
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.replica(1).isSubscribed());
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.replica(1).isServing());
        assertThat(stack.client(1).put(PutRequest.newBuilder().setKey("resub/k").setValue("v")
                .setMode(WriteMode.SYNC).build()).getStatus()).isEqualTo("applied");
    }

    @Test
    void resumedWatch_ofLargeValues_sendsTheCatchUpAsTheClientReads() {
        for (int i = 0; i < 12; i++) { // 3 MiB of current state: more than one catch-up page (1 MiB)
            stack.client(0).put(PutRequest.newBuilder().setKey("page/k" + String.format("%02d", i)).setValue(BIG)
                    .setMode(WriteMode.SYNC).build());
        }
        Collector c = new Collector();
        stack.asyncClient(1).watch(WatchRequest.newBuilder().setPrefix("page/").setStartVersion(1).build(), c);
        await().atMost(Duration.ofSeconds(15)).until(() -> c.events.size() == 12);
        assertThat(c.events).extracting(WatchResponse::getKey).isSorted().doesNotHaveDuplicates();
        assertThat(c.events).allMatch(e -> e.getType() == EventType.PUT && e.getValue().length() == BIG.length());
        put(0, "page/k00", "live");
        await().atMost(Duration.ofSeconds(10)).until(() -> c.events.size() == 13);
        assertThat(c.events.getLast().getVersion()).isEqualTo(2);
        assertThat(c.error.get()).isNull();
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
        assertThat(log).extracting(OplogRow::kind).containsExactly(OperationKind.PUT, OperationKind.EXPIRE);
        assertThat(stack.store.find("ttl/k")).map(Entry::value).isEmpty();

        // resumed afterwards, the key reads as it did live: EXPIRE, same version and operation (not DELETE)
        stack.client(0).put(PutRequest.newBuilder().setKey("ttl/gone").setValue("v").setMode(WriteMode.SYNC).build());
        stack.client(0).delete(DeleteRequest.newBuilder().setKey("ttl/gone").setMode(WriteMode.SYNC).build());
        Collector resumed = new Collector();
        stack.asyncClient(0).watch(WatchRequest.newBuilder().setPrefix("ttl/").setStartVersion(1).build(), resumed);
        await().atMost(Duration.ofSeconds(10)).until(() -> resumed.events.size() >= 2);
        WatchResponse expired = resumed.events.stream().filter(e -> e.getKey().equals("ttl/k")).findFirst().orElseThrow();
        assertThat(expired.getType()).isEqualTo(EventType.EXPIRE);
        assertThat(expired.getVersion()).isEqualTo(expire.getVersion());
        assertThat(expired.getOperationId()).isEqualTo(expire.getOperationId());
        WatchResponse deleted = resumed.events.stream().filter(e -> e.getKey().equals("ttl/gone")).findFirst()
                .orElseThrow();
        assertThat(deleted.getType()).isEqualTo(EventType.DELETE);
        assertThat(deleted.getOperationId()).isNotEmpty();
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
