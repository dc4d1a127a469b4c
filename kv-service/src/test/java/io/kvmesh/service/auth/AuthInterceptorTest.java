package io.kvmesh.service.auth;

import com.google.rpc.ErrorInfo;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.internal.testing.StreamRecorder;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetOperationResponse;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.KeyValueInput;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import io.kvmesh.api.v1.OperationStatus;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutManyResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.auth.Grant;
import io.kvmesh.auth.Permission;
import io.kvmesh.auth.TokenVerifier;
import io.kvmesh.auth.Tokens;
import io.kvmesh.service.testing.GrpcCleanupExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

/**
 * The authorisation rules, in-process, in front of a fake KeyValue service that records what reached it: a refused
 * request must never reach the service.
 */
class AuthInterceptorTest {
    @RegisterExtension
    final GrpcCleanupExtension grpc = new GrpcCleanupExtension();
    @TempDir
    Path keys;

    private final List<Object> reached = new CopyOnWriteArrayList<>();
    private com.nimbusds.jose.jwk.ECKey signingKey;
    private ManagedChannel channel;

    @BeforeEach
    void setUp() throws Exception {
        Tokens.generateKeys(keys);
        signingKey = Tokens.readSigningKey(keys.resolve(Tokens.SIGNING_KEY_FILE));
        TokenVerifier verifier = new TokenVerifier(Tokens.readPublicKeys(keys.resolve(Tokens.PUBLIC_KEYS_FILE)),
                Clock.systemUTC());
        String name = InProcessServerBuilder.generateName();
        grpc.register(InProcessServerBuilder.forName(name).directExecutor()
                .addService(ServerInterceptors.intercept(new FakeKeyValue(), new AuthInterceptor(verifier)))
                .build().start());
        channel = grpc.register(InProcessChannelBuilder.forName(name).directExecutor().build());
    }

    private String token(String prefix, String permissions) {
        return Tokens.mint(signingKey, "test", List.of(new Grant(prefix, Permission.parseList(permissions))),
                Duration.ofMinutes(5), Clock.systemUTC());
    }

    private KeyValueGrpc.KeyValueBlockingStub stub(String token) {
        KeyValueGrpc.KeyValueBlockingStub stub = KeyValueGrpc.newBlockingStub(channel);
        if (token != null) {
            Metadata md = new Metadata();
            md.put(AuthInterceptor.AUTHORIZATION, token);
            stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));
        }
        return stub;
    }

    private static Status.Code code(Runnable call) {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class, call::run);
        return e == null ? Status.Code.OK : e.getStatus().getCode();
    }

    @ParameterizedTest(name = "Authorization: {0} -> UNAUTHENTICATED")
    @CsvSource(delimiter = '|', nullValues = "NONE", value = {"NONE", "''", "Bearer", "Bearer not-a-jwt",
            "Basic dXNlcjpwYXNz"})
    void aCallWithoutAValidToken_isUnauthenticated_andNeverReachesTheService(String header) {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
                () -> stub(header).get(GetRequest.newBuilder().setKey("app1/x").build()));
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
        assertThat(StatusProto.fromThrowable(e).getDetailsList()).isEmpty();
        assertThat(reached).isEmpty();
    }

    @Test
    void aTokenFromAnotherStack_isUnauthenticated() throws Exception {
        Path other = keys.resolve("other");
        Tokens.generateKeys(other);
        String foreign = Tokens.mint(Tokens.readSigningKey(other.resolve(Tokens.SIGNING_KEY_FILE)), "x",
                List.of(new Grant("", Set.of(Permission.READ))), Duration.ofMinutes(5), Clock.systemUTC());
        assertThat(code(() -> stub("Bearer " + foreign).get(GetRequest.newBuilder().setKey("a").build())))
                .isEqualTo(Status.Code.UNAUTHENTICATED);
    }

    @ParameterizedTest(name = "token {0} [{1}]: {2} -> {3}")
    @CsvSource(delimiter = '|', value = {
            "app1/ | rw    | put app1/x        | OK",
            "app1/ | rw    | put app2/x        | PERMISSION_DENIED",
            "app1/ | rw    | putdata app1/x    | OK",
            "app1/ | rw    | putdata app2/x    | PERMISSION_DENIED",
            "app1/ | rw    | many app1/x       | OK",
            "app1/ | rw    | many app2/x       | PERMISSION_DENIED",
            "app1/ | read  | many app1/x       | PERMISSION_DENIED",
            "app1/ | read  | put app1/x        | PERMISSION_DENIED",
            "app1/ | read  | delete app1/x     | PERMISSION_DENIED",
            "app1/ | write | delete app1/x     | OK",
            "app1/ | read  | get app1/x        | OK",
            "app1/ | write | get app1/x        | PERMISSION_DENIED",
            "app1/ | read  | list app1/        | OK",
            "app1/ | read  | list app1/sub/    | OK",
            "app1/ | read  | list ''           | PERMISSION_DENIED",
            "app1/ | read  | list app          | PERMISSION_DENIED",
            "''    | read  | list ''           | OK",
            "app1/ | read  | operation app1/x  | OK",
            "app1/ | read  | operation app2/x  | PERMISSION_DENIED",
            "app1/ | read  | operation ''      | OK",
    })
    void eachRequestNeedsItsPermissionOnItsKeyOrWholePrefix(String prefix, String perms, String request,
                                                            Status.Code expected) {
        String[] parts = request.split(" ", 2);
        String key = parts[1].equals("''") ? "" : parts[1];
        KeyValueGrpc.KeyValueBlockingStub stub = stub("Bearer " + token(prefix, perms));
        Function<String, Runnable> call = switch (parts[0]) {
            case "put" -> k -> () -> stub.put(PutRequest.newBuilder().setKey(k).setValue("v").build());
            case "putdata" -> k -> () -> stub.put(PutRequest.newBuilder()
                    .setData(KeyValueInput.newBuilder().setKey(k).setValue("v")).build());
            case "many" -> k -> () -> stub.putMany(PutManyRequest.newBuilder()   // a granted put first, then k
                    .addPuts(PutRequest.newBuilder().setKey("app1/ok").setValue("v"))
                    .addPuts(PutRequest.newBuilder().setData(KeyValueInput.newBuilder().setKey(k).setValue("v"))).build());
            case "delete" -> k -> () -> stub.delete(DeleteRequest.newBuilder().setKey(k).build());
            case "get" -> k -> () -> stub.get(GetRequest.newBuilder().setKey(k).build());
            case "list" -> k -> () -> stub.list(ListRequest.newBuilder().setPrefix(k).build());
            case "operation" -> k -> () -> stub.getOperation(GetOperationRequest.newBuilder().setOperationId(k).build());
            default -> throw new IllegalArgumentException(parts[0]);
        };
        assertThat(code(call.apply(key))).isEqualTo(expected);
        if (expected == Status.Code.PERMISSION_DENIED && !parts[0].equals("operation")) {
            assertThat(reached).as("a refused request must not reach the service").isEmpty();
        }
    }

    @Test
    void aRefusal_saysWhichPermissionOnWhichKey_inItsErrorInfo() throws Exception {
        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
                () -> stub("Bearer " + token("app1/", "read")).put(PutRequest.newBuilder().setKey("app1/x")
                        .setValue("v").build()));
        assertThat(e.getStatus().getDescription()).contains("write").contains("app1/x");
        ErrorInfo info = StatusProto.fromThrowable(e).getDetails(0).unpack(ErrorInfo.class);
        assertThat(info.getReason()).isEqualTo("PERMISSION_DENIED");
        assertThat(info.getMetadataMap()).containsEntry("permission", "write").containsEntry("key", "app1/x");
    }

    @Test
    void watch_needsTheWatchPermissionOnTheWholePrefix() throws Exception {
        Metadata md = new Metadata();
        md.put(AuthInterceptor.AUTHORIZATION, "Bearer " + token("app1/", "read,watch"));
        KeyValueGrpc.KeyValueStub stub = KeyValueGrpc.newStub(channel)
                .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));

        StreamRecorder<WatchResponse> allowed = StreamRecorder.create();
        stub.watch(WatchRequest.newBuilder().setPrefix("app1/").build(), allowed);
        assertThat(allowed.awaitCompletion(5, TimeUnit.SECONDS)).isTrue();
        assertThat(allowed.getError()).isNull();
        assertThat(allowed.getValues()).hasSize(1);

        StreamRecorder<WatchResponse> refused = StreamRecorder.create();
        stub.watch(WatchRequest.newBuilder().setPrefix("").build(), refused);
        assertThat(refused.awaitCompletion(5, TimeUnit.SECONDS)).isTrue();
        assertThat(Status.fromThrowable(refused.getError()).getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
        assertThat(refused.getValues()).isEmpty();

        StreamRecorder<WatchResponse> readOnly = StreamRecorder.create();
        Metadata ro = new Metadata();
        ro.put(AuthInterceptor.AUTHORIZATION, "Bearer " + token("app1/", "read"));
        KeyValueGrpc.newStub(channel).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(ro))
                .watch(WatchRequest.newBuilder().setPrefix("app1/").build(), readOnly);
        assertThat(readOnly.awaitCompletion(5, TimeUnit.SECONDS)).isTrue();
        assertThat(Status.fromThrowable(readOnly.getError()).getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
    }

    /** Answers every call at once and records the requests that reached it. */
    private final class FakeKeyValue extends KeyValueGrpc.KeyValueImplBase {
        @Override
        public void get(GetRequest request, StreamObserver<GetResponse> out) {
            reached.add(request);
            out.onNext(GetResponse.newBuilder().setData(Entry.newBuilder().setKey(request.getKey())).build());
            out.onCompleted();
        }

        @Override
        public void put(PutRequest request, StreamObserver<PutResponse> out) {
            reached.add(request);
            out.onNext(PutResponse.newBuilder().setStatus("queued").build());
            out.onCompleted();
        }

        @Override
        public void putMany(PutManyRequest request, StreamObserver<PutManyResponse> out) {
            reached.add(request);
            out.onNext(PutManyResponse.getDefaultInstance());
            out.onCompleted();
        }

        @Override
        public void delete(DeleteRequest request, StreamObserver<DeleteResponse> out) {
            reached.add(request);
            out.onNext(DeleteResponse.newBuilder().setStatus("queued").build());
            out.onCompleted();
        }

        @Override
        public void list(ListRequest request, StreamObserver<ListResponse> out) {
            reached.add(request);
            out.onNext(ListResponse.getDefaultInstance());
            out.onCompleted();
        }

        @Override
        public void getOperation(GetOperationRequest request, StreamObserver<GetOperationResponse> out) {
            reached.add(request);
            // the fake names the operation's key after its id, so the test picks the key through the id
            out.onNext(GetOperationResponse.newBuilder().setData(OperationStatus.newBuilder()
                    .setOperationId(request.getOperationId()).setKey(request.getOperationId())).build());
            out.onCompleted();
        }

        @Override
        public void watch(WatchRequest request, StreamObserver<WatchResponse> out) {
            reached.add(request);
            out.onNext(WatchResponse.getDefaultInstance());
            out.onCompleted();
        }
    }
}
