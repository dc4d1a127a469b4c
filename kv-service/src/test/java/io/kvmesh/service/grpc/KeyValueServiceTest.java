package io.kvmesh.service.grpc;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ClientCalls;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.KeyValueInput;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.core.config.Limits;
import io.kvmesh.core.validate.Validator;
import io.kvmesh.service.testing.GrpcCleanupExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

/**
 * The handlers' request checks, in-process. The read and write paths are absent on purpose: a request that fails its
 * check must be answered before either is touched (the integration tests cover the paths on real servers).
 */
class KeyValueServiceTest {
    @RegisterExtension
    final GrpcCleanupExtension grpc = new GrpcCleanupExtension();
    private ManagedChannel channel;
    private KeyValueGrpc.KeyValueBlockingStub stub;

    @BeforeEach
    void setUp() throws Exception {
        String name = UUID.randomUUID().toString();
        grpc.register(InProcessServerBuilder.forName(name).directExecutor()
                .addService(MalformedRequestInterceptor.protect(new KeyValueService(null, null, null, () -> java.util.concurrent.CompletableFuture.completedFuture(null),
                        new Validator(new Limits(16, 32, 10, 50, 1 << 20)), java.time.Duration.ofSeconds(1)).bindService()))
                .build().start());
        channel = grpc.register(InProcessChannelBuilder.forName(name).directExecutor().build());
        stub = KeyValueGrpc.newBlockingStub(channel);
    }

    @Test
    void get_returnsInvalidArgument_whenKeyEmpty() {
        assertInvalid(() -> stub.get(GetRequest.getDefaultInstance()), "key must not be empty");
    }

    @Test
    void put_returnsInvalidArgument_forEachBadInput() {
        assertInvalid(() -> stub.put(PutRequest.newBuilder().setValue("v").build()), "key must not be empty");
        assertInvalid(() -> stub.put(PutRequest.newBuilder().setKey("k".repeat(17)).setValue("v").build()),
                "key is 17 bytes; the limit is 16");
        assertInvalid(() -> stub.put(PutRequest.newBuilder().setKey("k").setValue("v".repeat(33)).build()),
                "value is 33 bytes; the limit is 32");
        assertInvalid(() -> stub.put(PutRequest.newBuilder().setKey("tab\tkey").setValue("v").build()),
                "control characters");
        assertInvalid(() -> stub.put(PutRequest.newBuilder()
                .setData(KeyValueInput.newBuilder().setValue("v")).build()), "key must not be empty");
        assertInvalid(() -> stub.put(PutRequest.newBuilder().setKey("a")
                .setData(KeyValueInput.newBuilder().setKey("b").setValue("v")).build()), "not both");
    }

    @Test
    void putMany_refusesTheWholeCall_namingTheFirstBadPut() {
        PutRequest ok = PutRequest.newBuilder().setKey("k").setValue("v").build();
        assertInvalid(() -> stub.putMany(PutManyRequest.getDefaultInstance()), "puts must hold 1 to 1000 puts (got 0)");
        PutManyRequest.Builder tooMany = PutManyRequest.newBuilder();
        for (int i = 0; i < 1001; i++) {
            tooMany.addPuts(ok);
        }
        assertInvalid(() -> stub.putMany(tooMany.build()), "puts must hold 1 to 1000 puts (got 1001)");
        assertInvalid(() -> stub.putMany(PutManyRequest.newBuilder().addPuts(ok)
                .addPuts(PutRequest.newBuilder().setKey("k").setValue("v".repeat(33))).build()),
                "puts[1]: value is 33 bytes; the limit is 32");
        assertInvalid(() -> stub.putMany(PutManyRequest.newBuilder().addPuts(ok.toBuilder().setRequestId("r1"))
                .addPuts(ok.toBuilder().setKey("j").setRequestId("r1")).build()),
                "puts[1] repeats the request id of puts[0] ('r1')");
    }

    @Test
    void delete_returnsInvalidArgument_whenKeyEmpty() {
        assertInvalid(() -> stub.delete(DeleteRequest.getDefaultInstance()), "key must not be empty");
    }

    @Test
    void list_returnsInvalidArgument_forNegativePageSizeOrBadPrefix() {
        assertInvalid(() -> stub.list(ListRequest.newBuilder().setPageSize(-5).build()), "page_size must not be negative");
        assertInvalid(() -> stub.list(ListRequest.newBuilder().setPrefix("a\u0001").build()), "control characters");
    }

    @Test
    void requestWithBytesThatAreNotUtf8_isInvalidArgument_notAnApplicationError() {
        // what Envoy sends for GET /api?key=%FF%FE: field 1 (key) holding the bytes FF FE
        byte[] body = {0x0A, 0x02, (byte) 0xFF, (byte) 0xFE};
        MethodDescriptor<byte[], byte[]> get = KeyValueGrpc.getGetMethod().toBuilder(BYTES, BYTES).build();
        assertInvalid(() -> ClientCalls.blockingUnaryCall(channel, get, CallOptions.DEFAULT, body), "not UTF-8");
        MethodDescriptor<byte[], byte[]> watch = KeyValueGrpc.getWatchMethod().toBuilder(BYTES, BYTES).build();
        assertInvalid(() -> ClientCalls.blockingServerStreamingCall(channel, watch, CallOptions.DEFAULT, body)
                .hasNext(), "not UTF-8");
    }

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public java.io.InputStream stream(byte[] value) {
            return new java.io.ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(java.io.InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
    };

    private static void assertInvalid(Runnable call, String message) {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, call::run);
        assertThat(e).as("expected INVALID_ARGUMENT").isNotNull();
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(e.getStatus().getDescription()).contains(message);
    }
}
