package io.kvmesh.it;

import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.OperationState;
import io.kvmesh.api.v1.OperationStatus;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutManyResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.store.OplogRow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/** SYNC writes, conditional writes, idempotent retries and operation status with 2 replicas × 2 consumers. */
class SyncAndConditionalIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("sync", 2, 2);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    private static PutResponse syncPut(int replica, String key, String value) {
        return stack.client(replica).put(PutRequest.newBuilder().setKey(key).setValue(value)
                .setMode(WriteMode.SYNC).build());
    }

    @Test
    void syncPut_answersApplied_andEveryReplicaReadsItAtOnce() {
        for (int i = 1; i <= 5; i++) {
            PutResponse put = syncPut(i % 2, "sync/k", "v" + i);
            assertThat(put.getStatus()).isEqualTo("applied");
            assertThat(put.getVersion()).isEqualTo(i);
            for (int r = 0; r < 2; r++) {
                GetResponse got = stack.client(r).get(GetRequest.newBuilder().setKey("sync/k").build());
                assertThat(got.getData().getValue()).as("replica %d after sync put %d", r, i).isEqualTo("v" + i);
                assertThat(got.getData().getVersion()).isEqualTo(i);
            }
        }
        DeleteResponse del = stack.client(1).delete(DeleteRequest.newBuilder().setKey("sync/k").setMode(WriteMode.SYNC).build());
        assertThat(del.getStatus()).isEqualTo("applied");
        assertThat(del.getVersion()).isEqualTo(6);
        assertThat(ReadWriteIT.codeOf(() -> stack.client(0).get(GetRequest.newBuilder().setKey("sync/k").build())))
                .isEqualTo(Status.Code.NOT_FOUND);
    }

    @Test
    void putMany_appliesEachPutOnceInOrder_andARetryWithRequestIdsAppliesNothingTwice() {
        PutManyRequest.Builder b = PutManyRequest.newBuilder();
        for (int i = 0; i < 200; i++) {   // 100 keys, each written twice in one call: the second must win
            b.addPuts(PutRequest.newBuilder().setKey("many/" + (i % 100)).setValue("v" + i).setRequestId("many-" + i));
        }
        b.addPuts(PutRequest.newBuilder().setKey("many/sync").setValue("s").setMode(WriteMode.SYNC));
        PutManyResponse first = stack.client(0).putMany(b.build());
        assertThat(first.getResultsCount()).isEqualTo(201);
        assertThat(first.getResults(0).getStatus()).isEqualTo("queued");
        assertThat(first.getResults(200).getStatus()).isEqualTo("applied");
        assertThat(first.getResults(200).getVersion()).isEqualTo(1);
        assertThat(first.getResultsList()).extracting(PutResponse::getOperationId).doesNotHaveDuplicates();
        PutManyResponse retry = stack.client(1).putMany(PutManyRequest.newBuilder()
                .addAllPuts(b.getPutsList().subList(0, 200)).build());
        assertThat(retry.getResultsList()).extracting(PutResponse::getOperationId)
                .isEqualTo(first.getResultsList().subList(0, 200).stream().map(PutResponse::getOperationId).toList());
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            for (int k = 0; k < 100; k++) {
                Entry e = stack.store.find("many/" + k).orElseThrow();
                assertThat(e.value()).isEqualTo("v" + (k + 100));
                assertThat(e.version()).as("many/%d written twice in the call, the retry applied nothing", k)
                        .isEqualTo(2);
            }
        });
    }

    @Test
    void putMany_withARequestIdHeldByAnotherWrite_queuesNothing() {
        stack.client(0).put(PutRequest.newBuilder().setKey("many/held").setValue("x").setRequestId("many-held")
                .setMode(WriteMode.SYNC).build());
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, () -> stack.client(0).putMany(
                PutManyRequest.newBuilder()
                        .addPuts(PutRequest.newBuilder().setKey("many/free").setValue("y"))
                        .addPuts(PutRequest.newBuilder().setKey("many/other").setValue("z").setRequestId("many-held"))
                        .build()));
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        // a SYNC write after it, on one of its keys, is applied as the key's first version: nothing else was queued
        assertThat(syncPut(0, "many/free", "after").getVersion()).isEqualTo(1);
    }

    @Test
    void syncPut_pastItsDeadline_answersQueuedWithTheOperationId() throws Exception {
        // no consumer applies meanwhile: the SYNC write must give up at its deadline, not fail
        stack.stopConsumers();
        try {
            PutResponse put = stack.client(0).withDeadlineAfter(Duration.ofMillis(1500))
                    .put(PutRequest.newBuilder().setKey("sync/slow").setValue("v").setMode(WriteMode.SYNC).build());
            assertThat(put.getStatus()).isEqualTo("queued");
            assertThat(put.getOperationId()).isNotEmpty();
            OperationStatus op = stack.client(1).getOperation(GetOperationRequest.newBuilder()
                    .setOperationId(put.getOperationId()).build()).getData();
            assertThat(op.getState()).isEqualTo(OperationState.PENDING);
        } finally {
            stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
            stack.addConsumer(io.kvmesh.consumer.apply.AfterCommit.NONE);
        }
        await().atMost(Duration.ofSeconds(20)).until(() ->
                stack.store.find("sync/slow").map(Entry::version).orElse(0L) == 1L);
    }

    @Test
    void conditionalPut_rejectedWithCurrentVersion_recordedWithReason() throws Exception {
        assertThat(stack.client(0).put(PutRequest.newBuilder().setKey("cas/k").setValue("first")
                .setExpectedVersion(0).setMode(WriteMode.SYNC).build()).getVersion()).isEqualTo(1);

        StatusRuntimeException conflict = catchThrowableOfType(StatusRuntimeException.class, () ->
                stack.client(1).put(PutRequest.newBuilder().setKey("cas/k").setValue("second")
                        .setExpectedVersion(0).setMode(WriteMode.SYNC).build()));
        assertThat(conflict).isNotNull();
        assertThat(conflict.getStatus().getCode()).isEqualTo(Status.Code.ABORTED);
        assertThat(conflict.getStatus().getDescription()).contains("expected version 0, current version 1");
        ErrorInfo info = StatusProto.fromThrowable(conflict).getDetails(0).unpack(ErrorInfo.class);
        assertThat(info.getMetadataMap()).containsEntry("current_version", "1");
        String rejectedId = info.getMetadataMap().get("operation_id");

        OperationStatus op = stack.client(0).getOperation(GetOperationRequest.newBuilder()
                .setOperationId(rejectedId).build()).getData();
        assertThat(op.getState()).isEqualTo(OperationState.REJECTED);
        assertThat(op.getReason()).contains("version conflict");
        assertThat(stack.store.find("cas/k")).map(Entry::value).contains("first");

        // the right version wins; a conditional delete too
        assertThat(stack.client(1).put(PutRequest.newBuilder().setKey("cas/k").setValue("third")
                .setExpectedVersion(1).setMode(WriteMode.SYNC).build()).getVersion()).isEqualTo(2);
        assertThat(catchThrowableOfType(StatusRuntimeException.class, () -> stack.client(0).delete(
                DeleteRequest.newBuilder().setKey("cas/k").setExpectedVersion(1).setMode(WriteMode.SYNC).build()))
                .getStatus().getCode()).isEqualTo(Status.Code.ABORTED);
        assertThat(stack.client(0).delete(DeleteRequest.newBuilder().setKey("cas/k").setExpectedVersion(2)
                .setMode(WriteMode.SYNC).build()).getVersion()).isEqualTo(3);
    }

    @Test
    void casRace_twoWritersExpectingTheSameVersion_exactlyOneWins() throws Exception {
        for (int round = 0; round < 10; round++) {
            String key = "race/" + round;
            CountDownLatch go = new CountDownLatch(1);
            List<CompletableFuture<String>> outcomes = new ArrayList<>();
            for (int w = 0; w < 2; w++) {
                int writer = w;
                outcomes.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        go.await();
                        return stack.client(writer).put(PutRequest.newBuilder().setKey(key).setValue("w" + writer)
                                .setExpectedVersion(0).setMode(WriteMode.SYNC).build()).getStatus();
                    } catch (StatusRuntimeException e) {
                        return e.getStatus().getCode().name();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                }));
            }
            go.countDown();
            List<String> results = outcomes.stream().map(CompletableFuture::join).toList();
            assertThat(results).as("round %d", round).containsExactlyInAnyOrder("applied", "ABORTED");
            List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey(key));
            assertThat(log).extracting(OplogRow::outcome)
                    .containsExactlyInAnyOrder(OperationOutcome.APPLIED, OperationOutcome.REJECTED);
            assertThat(stack.store.find(key)).map(Entry::version).contains(1L);
        }
    }

    @Test
    void retriedPut_withSameRequestId_appliedOnce_bothAnswersCarryTheSameOperation() {
        PutRequest request = PutRequest.newBuilder().setKey("retry/k").setValue("v").setRequestId("req-123").build();
        PutResponse first = stack.client(0).put(request);
        PutResponse second = stack.client(1).put(request);
        assertThat(second.getOperationId()).isEqualTo(first.getOperationId());
        await().atMost(Duration.ofSeconds(10)).until(() -> stack.store.find("retry/k").isPresent());

        // a SYNC retry of the same request, after it applied, answers with the recorded outcome
        PutResponse third = stack.client(0).put(request.toBuilder().setMode(WriteMode.SYNC).build());
        assertThat(third.getStatus()).isEqualTo("applied");
        assertThat(third.getOperationId()).isEqualTo(first.getOperationId());
        assertThat(third.getVersion()).isEqualTo(1);
        List<OplogRow> log = stack.store.inTransaction(dao -> dao.operationsOfKey("retry/k"));
        assertThat(log).hasSize(1);
        assertThat(stack.store.find("retry/k")).map(Entry::version).contains(1L);
    }

    @Test
    void getOperation_appliedWithVersion_unknownIsNotFound() {
        PutResponse put = syncPut(0, "op/k", "v");
        OperationStatus op = stack.client(1).getOperation(GetOperationRequest.newBuilder()
                .setOperationId(put.getOperationId()).build()).getData();
        assertThat(op.getState()).isEqualTo(OperationState.APPLIED);
        assertThat(op.getVersion()).isEqualTo(1);
        assertThat(op.getKey()).isEqualTo("op/k");
        assertThat(op.getKind()).isEqualTo("PUT");
        assertThat(ReadWriteIT.codeOf(() -> stack.client(0).getOperation(GetOperationRequest.newBuilder()
                .setOperationId("no-such-operation").build()))).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(ReadWriteIT.codeOf(() -> stack.client(0).getOperation(GetOperationRequest.newBuilder()
                .setOperationId("").build()))).isEqualTo(Status.Code.INVALID_ARGUMENT);
    }
}
