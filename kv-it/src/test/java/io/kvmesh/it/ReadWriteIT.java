package io.kvmesh.it;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueInput;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.Entry;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** Put, get, delete and list through kv-service and kv-consumer on real PostgreSQL, Redis and RabbitMQ. */
class ReadWriteIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("readwrite", 1, 1);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    static Status.Code codeOf(Runnable call) {
        try {
            call.run();
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        }
        return Status.Code.OK;
    }

    private static GetResponse awaitGet(String key) {
        await().atMost(Duration.ofSeconds(10)).until(() ->
                codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey(key).build())) == Status.Code.OK);
        return stack.client(0).get(GetRequest.newBuilder().setKey(key).build());
    }

    @Test
    void put_thenGet_readsFromPostgresThenRedis() {
        PutResponse put = stack.client(0).put(PutRequest.newBuilder().setKey("greeting").setValue("hello").build());
        assertThat(put.getStatus()).isEqualTo("queued");
        assertThat(put.getOperationId()).isNotEmpty();

        GetResponse first = awaitGet("greeting");
        assertThat(first.getData().getValue()).isEqualTo("hello");
        assertThat(first.getData().getVersion()).isEqualTo(1);
        assertThat(first.getData().hasCreateTime()).isTrue();
        // the applier caches what it commits (or the first read's fill does): soon every read is a cache hit
        await().atMost(Duration.ofSeconds(5)).until(() ->
                stack.client(0).get(GetRequest.newBuilder().setKey("greeting").build()).getSource().equals("redis"));
        GetResponse second = stack.client(0).get(GetRequest.newBuilder().setKey("greeting").build());
        assertThat(second.getSource()).isEqualTo("redis");
        assertThat(second.getData().getValue()).isEqualTo("hello");
    }

    @Test
    void get_missThenFill_sourcePostgresThenRedis() throws Exception {
        stack.client(0).put(PutRequest.newBuilder().setData(KeyValueInput.newBuilder().setKey("filled").setValue("v")).build());
        awaitGet("filled");
        try (var cache = new io.kvmesh.core.cache.KvCache(stack.iso.redis(),
                new io.kvmesh.core.queue.Partitioner(stack.iso.amqp().partitions()))) {
            cache.evict("filled").join();
        }
        GetResponse fromDb = stack.client(0).get(GetRequest.newBuilder().setKey("filled").build());
        assertThat(fromDb.getSource()).isEqualTo("postgres");
        assertThat(fromDb.getData().getValue()).isEqualTo("v");
        await().atMost(Duration.ofSeconds(5)).until(() ->
                stack.client(0).get(GetRequest.newBuilder().setKey("filled").build()).getSource().equals("redis"));
    }

    /**
     * A consumer that starts (a restart, an upgrade, a takeover) holds no partition's cache permit until it learns that
     * the broker made it active: the permit request each consumer sends into every partition queue when it subscribes
     * tells it, so a read-only workload is served from the cache again without waiting for a write.
     */
    @Test
    void aNewConsumer_takesTheCachePermitsWithoutAWrite_soReadsComeFromTheCacheAgain() {
        stack.client(0).put(PutRequest.newBuilder().setKey("permit/k").setValue("v")
                .setMode(io.kvmesh.api.v1.WriteMode.SYNC).build());
        stack.stopConsumers();
        stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
        await().atMost(Duration.ofSeconds(10))
                .until(() -> stack.consumer(0).cachePermits() == stack.iso.amqp().partitions());
        await().atMost(Duration.ofSeconds(5)).until(() ->
                stack.client(0).get(GetRequest.newBuilder().setKey("permit/k").build()).getSource().equals("redis"));
    }

    @Test
    void get_returnsNotFound_whenKeyMissing() {
        assertThat(codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey("nope").build())))
                .isEqualTo(Status.Code.NOT_FOUND);
        // second time from the cached tombstone: still NOT_FOUND
        assertThat(codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey("nope").build())))
                .isEqualTo(Status.Code.NOT_FOUND);
    }

    @Test
    void delete_thenGet_returnsNotFoundOnceApplied_andRecreateContinuesVersions() {
        stack.client(0).put(PutRequest.newBuilder().setKey("doomed").setValue("x").build());
        assertThat(awaitGet("doomed").getData().getVersion()).isEqualTo(1);
        assertThat(stack.client(0).delete(DeleteRequest.newBuilder().setKey("doomed").build()).getStatus())
                .isEqualTo("queued");
        await().atMost(Duration.ofSeconds(10)).until(() ->
                codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey("doomed").build())) == Status.Code.NOT_FOUND);
        stack.client(0).put(PutRequest.newBuilder().setKey("doomed").setValue("again").build());
        GetResponse back = awaitGet("doomed");
        assertThat(back.getData().getValue()).isEqualTo("again");
        assertThat(back.getData().getVersion()).isEqualTo(3);
    }

    @Test
    void list_pagesThroughPrefixInKeyOrder() {
        for (int i = 0; i < 25; i++) {
            stack.client(0).put(PutRequest.newBuilder().setKey(String.format("page/%02d", i)).setValue("v" + i).build());
        }
        stack.client(0).put(PutRequest.newBuilder().setKey("pagf").setValue("outside").build());
        stack.client(0).put(PutRequest.newBuilder().setKey("page").setValue("outside-too").build());
        await().atMost(Duration.ofSeconds(10)).until(() ->
                stack.client(0).list(ListRequest.newBuilder().setPrefix("page/").setPageSize(100).build()).getDataCount() == 25);

        List<String> keys = new ArrayList<>();
        String token = "";
        int pages = 0;
        do {
            ListResponse page = stack.client(0).list(ListRequest.newBuilder()
                    .setPrefix("page/").setPageSize(10).setPageToken(token).build());
            page.getDataList().stream().map(Entry::getKey).forEach(keys::add);
            token = page.getNextPageToken();
            pages++;
        } while (!token.isEmpty());
        assertThat(pages).isEqualTo(3);
        assertThat(keys).hasSize(25).isSorted().allMatch(k -> k.startsWith("page/"));
        assertThat(keys.getFirst()).isEqualTo("page/00");
    }

    @Test
    void list_pagesAreBoundedInBytesToo_soLargeValuesAlwaysFit() {
        String big = "b".repeat(900 * 1024); // 6 of them: 5.3 MiB, past the 4 MiB a page may hold
        for (int i = 0; i < 6; i++) {
            stack.client(0).put(PutRequest.newBuilder().setKey("bytes/" + i).setValue(big).build());
        }
        await().atMost(Duration.ofSeconds(15)).until(() -> codeOf(() -> stack.client(0).get(GetRequest.newBuilder()
                .setKey("bytes/5").build())) == Status.Code.OK);
        ListResponse first = stack.client(0).list(ListRequest.newBuilder().setPrefix("bytes/").build());
        assertThat(first.getDataList()).extracting(Entry::getKey).containsExactly("bytes/0", "bytes/1", "bytes/2",
                "bytes/3");
        assertThat(first.getNextPageToken()).isNotEmpty();
        ListResponse second = stack.client(0).list(ListRequest.newBuilder().setPrefix("bytes/")
                .setPageToken(first.getNextPageToken()).build());
        assertThat(second.getDataList()).extracting(Entry::getKey).containsExactly("bytes/4", "bytes/5");
        assertThat(second.getNextPageToken()).isEmpty();
        assertThat(second.getData(0).getValue()).isEqualTo(big);
    }

    @Test
    void list_rejectsNegativePageSizeAndForeignToken() {
        assertThatThrownBy(() -> stack.client(0).list(ListRequest.newBuilder().setPageSize(-1).build()))
                .isInstanceOf(StatusRuntimeException.class).hasMessageContaining("INVALID_ARGUMENT");
        assertThatThrownBy(() -> stack.client(0).list(ListRequest.newBuilder().setPageToken("garbage!").build()))
                .isInstanceOf(StatusRuntimeException.class).hasMessageContaining("page_token");
    }
}
