package io.kvmesh.it;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.OperationState;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.store.OplogRow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A request id names one request: a retry gets the first outcome; another write under the same id is refused. */
class RequestIdIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("requestid", 2, 1);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    private static PutRequest put(String key, String value, String requestId) {
        return PutRequest.newBuilder().setKey(key).setValue(value).setRequestId(requestId).build();
    }

    private static StatusRuntimeException refused(Executable call) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(e.getStatus().getDescription()).contains("was already used for a different write");
        com.google.rpc.Status details = StatusProto.fromThrowable(e);
        assertThat(details).isNotNull();
        assertThat(details.getDetails(0).toString()).contains("REQUEST_ID_REUSED");
        return e;
    }

    @Test
    void reusedForAnotherKey_afterTheFirstApplied_isRefused_andTheFirstStaysApplied() {
        long duplicatesBefore = stack.consumer(0).duplicateCount();
        PutResponse first = stack.client(0).put(put("sec/a", "1", "shared-id-1").toBuilder()
                .setMode(WriteMode.SYNC).build());
        assertThat(first.getStatus()).isEqualTo("applied");

        StatusRuntimeException e = refused(() -> stack.client(1).put(put("sec/b", "1", "shared-id-1")));
        assertThat(e.getStatus().getDescription()).contains("PUT of key 'sec/a'");
        refused(() -> stack.client(0).delete(DeleteRequest.newBuilder().setKey("sec/a")
                .setRequestId("shared-id-1").build()));
        refused(() -> stack.client(0).put(put("sec/a", "2", "shared-id-1")));

        // a later write to the same key (same queue) applies after anything published before it: the refused
        // writes were never published, or the applier would have met their (repeated) operation id
        assertThat(stack.client(0).put(put("sec/a", "3", "fresh-id").toBuilder().setMode(WriteMode.SYNC).build())
                .getVersion()).isEqualTo(2);
        assertThat(stack.consumer(0).duplicateCount()).isEqualTo(duplicatesBefore);
        assertThat(ReadWriteIT.codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey("sec/b").build())))
                .isEqualTo(Status.Code.NOT_FOUND);
        assertThat(stack.client(0).getOperation(GetOperationRequest.newBuilder()
                .setOperationId(first.getOperationId()).build()).getData().getKey()).isEqualTo("sec/a");
    }

    @Test
    void reusedWhileTheFirstIsStillQueued_isRefused_andOnlyTheFirstApplies() throws Exception {
        stack.stopConsumers(); // nothing applies: the first write stays PENDING
        try {
            PutResponse first = stack.client(0).put(put("pend/a", "1", "shared-id-2"));
            assertThat(first.getStatus()).isEqualTo("queued");
            refused(() -> stack.client(1).put(put("pend/b", "1", "shared-id-2")));
            // an identical retry is not a reuse: same operation, applied once
            assertThat(stack.client(1).put(put("pend/a", "1", "shared-id-2")).getOperationId())
                    .isEqualTo(first.getOperationId());
            assertThat(stack.client(0).getOperation(GetOperationRequest.newBuilder()
                    .setOperationId(first.getOperationId()).build()).getData().getState())
                    .isEqualTo(OperationState.PENDING);
        } finally {
            stack.addConsumer(AfterCommit.NONE);
        }
        await().atMost(Duration.ofSeconds(15)).until(() -> stack.store.find("pend/a").isPresent());
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.readyMessages() == 0);
        List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey("pend/a"));
        assertThat(log).hasSize(1);
        assertThat(stack.store.find("pend/b")).isEmpty();
    }

    /**
     * The case that lost an acknowledged write: the first write queued (consumers stopped), Redis loses everything
     * (a restart without its data), the same request id on a key of another partition. The second is refused before
     * it is published, and the first applies.
     */
    @Test
    void reusedOnAnotherPartition_afterRedisLostItsData_whileTheFirstIsQueued_isRefused_andTheFirstApplies()
            throws Exception {
        Partitioner partitions = new Partitioner(stack.iso.amqp().partitions());
        String a = "lost/a";
        String b = java.util.stream.IntStream.range(0, 1000).mapToObj(i -> "lost/b" + i)
                .filter(k -> partitions.partitionOf(k) != partitions.partitionOf(a)).findFirst().orElseThrow();
        stack.stopConsumers();
        PutResponse first;
        try {
            first = stack.client(0).put(put(a, "first", "shared-id-3"));
            assertThat(first.getStatus()).isEqualTo("queued");
            flushRedis();
            refused(() -> stack.client(1).put(put(b, "second", "shared-id-3")));
            refused(() -> stack.client(0).put(put(b, "second", "shared-id-3").toBuilder().setMode(WriteMode.SYNC)
                    .build()));
        } finally {
            stack.addConsumer(AfterCommit.NONE);
        }
        await().atMost(Duration.ofSeconds(15)).until(() -> stack.store.find(a).isPresent());
        await().atMost(Duration.ofSeconds(5)).until(() -> stack.readyMessages() == 0);
        assertThat(stack.store.find(a).orElseThrow().value()).isEqualTo("first");
        List<OplogRow> logA = stack.store.inTransaction(dao -> dao.operationsOfKey(a));
        assertThat(logA).extracting(OplogRow::id).containsExactly(first.getOperationId());
        assertThat(stack.store.find(b)).isEmpty();
        List<OplogRow> logB = stack.store.inTransaction(dao -> dao.operationsOfKey(b));
        assertThat(logB).isEmpty();
    }

    /** Envoy retries a write on another replica with the same edge request header: one operation, applied once. */
    @Test
    void withoutRequestId_envoysRetryOnAnotherReplica_isTheSameOperation_appliedOnce() {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("x-kvmesh-edge-request", Metadata.ASCII_STRING_MARSHALLER),
                "0d1b3c7e-edge;" + System.currentTimeMillis());
        PutRequest request = PutRequest.newBuilder().setKey("edge/k").setValue("v").setMode(WriteMode.SYNC).build();
        PutResponse first = stack.client(0).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                .put(request);
        PutResponse retry = stack.client(1).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                .put(request);
        assertThat(retry.getOperationId()).isEqualTo(first.getOperationId());
        assertThat(retry.getVersion()).isEqualTo(first.getVersion()).isEqualTo(1);
        // another request through Envoy (another edge id), same content: a write of its own
        Metadata other = new Metadata();
        other.put(Metadata.Key.of("x-kvmesh-edge-request", Metadata.ASCII_STRING_MARSHALLER),
                "5e2a9f10-edge;" + System.currentTimeMillis());
        PutResponse second = stack.client(0).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(other))
                .put(request);
        assertThat(second.getOperationId()).isNotEqualTo(first.getOperationId());
        assertThat(second.getVersion()).isEqualTo(2);
        List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey("edge/k"));
        assertThat(log).hasSize(2);
        // nothing was recorded for them: the edge id is not a client's idempotency key
        assertThat(stack.store.requestIdRecorded(first.getOperationId())).isFalse();
    }

    private static void flushRedis() {
        io.lettuce.core.RedisClient client = io.lettuce.core.RedisClient.create(stack.iso.redis().uri());
        try (var connection = client.connect()) {
            assertThat(connection.sync().flushall()).isEqualTo("OK");
        } finally {
            client.shutdown();
        }
    }

    @Test
    void idempotencyKeyHeader_actsAsTheRequestId() {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("idempotency-key", Metadata.ASCII_STRING_MARSHALLER), "idem-7");
        KeyValueGrpc.KeyValueBlockingStub client = stack.client(0)
                .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        PutRequest request = PutRequest.newBuilder().setKey("idem/k").setValue("v").setMode(WriteMode.SYNC).build();
        PutResponse first = client.put(request);
        PutResponse again = client.put(request);
        assertThat(again.getOperationId()).isEqualTo(first.getOperationId());
        assertThat(again.getVersion()).isEqualTo(first.getVersion()).isEqualTo(1);
        refused(() -> client.put(request.toBuilder().setValue("other").build()));
        // the same id in the body means the same request
        assertThat(stack.client(1).put(request.toBuilder().setRequestId("idem-7").build()).getOperationId())
                .isEqualTo(first.getOperationId());
    }

    @Test
    void sameWriteWithAnotherMode_isTheSameRequest() {
        PutRequest request = put("mode/k", "v", "mode-id");
        PutResponse queued = stack.client(0).put(request);
        PutResponse applied = stack.client(1).put(request.toBuilder().setMode(WriteMode.SYNC).build());
        assertThat(applied.getOperationId()).isEqualTo(queued.getOperationId());
        assertThat(applied.getStatus()).isEqualTo("applied");
        assertThat(applied.getVersion()).isEqualTo(1);
    }
}
