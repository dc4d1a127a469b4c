package io.kvmesh.e2e;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Native gRPC through Envoy's listener (passthrough): KeyValue, health, and grpcurl by server reflection. */
@Order(2)
class GrpcE2ETest {
    private static ManagedChannel channel;
    private static KeyValueGrpc.KeyValueBlockingStub kv;

    @BeforeAll
    static void connect() {
        channel = Stack.channel();
        kv = KeyValueGrpc.newBlockingStub(channel);
    }

    @AfterAll
    static void disconnect() throws InterruptedException {
        Stack.close(channel);
    }

    private static KeyValueGrpc.KeyValueBlockingStub stub() {
        return kv.withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    @Test
    void serverReflection_answersInBothVersions_v1AndV1alpha() throws Exception {
        java.util.concurrent.CompletableFuture<List<String>> v1 = new java.util.concurrent.CompletableFuture<>();
        io.grpc.stub.StreamObserver<io.grpc.reflection.v1.ServerReflectionRequest> req1 =
                io.grpc.reflection.v1.ServerReflectionGrpc.newStub(channel).serverReflectionInfo(observer(v1,
                        (io.grpc.reflection.v1.ServerReflectionResponse r) -> r.getListServicesResponse().getServiceList()
                                .stream().map(io.grpc.reflection.v1.ServiceResponse::getName).toList()));
        req1.onNext(io.grpc.reflection.v1.ServerReflectionRequest.newBuilder().setListServices("").build());
        req1.onCompleted();
        // v1alpha: what Python's grpcio-reflection and older tools speak
        java.util.concurrent.CompletableFuture<List<String>> v1alpha = new java.util.concurrent.CompletableFuture<>();
        io.grpc.stub.StreamObserver<io.grpc.reflection.v1alpha.ServerReflectionRequest> req2 =
                io.grpc.reflection.v1alpha.ServerReflectionGrpc.newStub(channel).serverReflectionInfo(observer(v1alpha,
                        (io.grpc.reflection.v1alpha.ServerReflectionResponse r) -> r.getListServicesResponse()
                                .getServiceList().stream().map(io.grpc.reflection.v1alpha.ServiceResponse::getName)
                                .toList()));
        req2.onNext(io.grpc.reflection.v1alpha.ServerReflectionRequest.newBuilder().setListServices("").build());
        req2.onCompleted();
        assertThat(v1.get(10, TimeUnit.SECONDS)).contains("kvmesh.v1.KeyValue", "grpc.health.v1.Health");
        assertThat(v1alpha.get(10, TimeUnit.SECONDS)).contains("kvmesh.v1.KeyValue", "grpc.health.v1.Health");
    }

    /** Completes {@code result} with {@code read} of the first response, or with the stream's error. */
    private static <T, R> io.grpc.stub.StreamObserver<T> observer(java.util.concurrent.CompletableFuture<R> result,
                                                                  java.util.function.Function<T, R> read) {
        return new io.grpc.stub.StreamObserver<>() {
            @Override
            public void onNext(T value) {
                result.complete(read.apply(value));
            }

            @Override
            public void onError(Throwable t) {
                result.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                result.completeExceptionally(new AssertionError("no answer"));
            }
        };
    }

    @Test
    void health_isServing_throughEnvoy() {
        HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS);
        assertThat(health.check(HealthCheckRequest.newBuilder().setService("").build()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
        assertThat(health.check(HealthCheckRequest.newBuilder().setService("kvmesh.v1.KeyValue").build()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    }

    @Test
    void put_thenGet_overNativeGrpc() {
        String key = Stack.uniqueKey("grpc");
        PutResponse put = stub().put(PutRequest.newBuilder().setKey(key).setValue("via-grpc").build());
        assertThat(put.getStatus()).isEqualTo("queued");
        assertThat(put.getOperationId()).isNotBlank();
        await().atMost(Duration.ofSeconds(15)).ignoreExceptionsInstanceOf(StatusRuntimeException.class).untilAsserted(() -> {
            GetResponse got = stub().get(GetRequest.newBuilder().setKey(key).build());
            assertThat(got.getData().getValue()).isEqualTo("via-grpc");
            assertThat(got.getData().getVersion()).isEqualTo(1);
        });
        // and the same entry through the REST edge
        assertThat(Stack.get("/api?key=" + Stack.q(key)).json().getAsJsonObject("data").get("value").getAsString())
                .isEqualTo("via-grpc");
    }

    @Test
    void get_missingKey_isNotFound_andEmptyKey_isInvalidArgument() {
        StatusRuntimeException missing = catchThrowableOfType(StatusRuntimeException.class,
                () -> stub().get(GetRequest.newBuilder().setKey(Stack.uniqueKey("nope")).build()));
        assertThat(missing.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
        StatusRuntimeException empty = catchThrowableOfType(StatusRuntimeException.class,
                () -> stub().put(PutRequest.newBuilder().setValue("v").build()));
        assertThat(empty.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    }

    private static Optional<String> grpcurl() {
        String configured = System.getenv("KVMESH_E2E_GRPCURL");
        if (configured != null && !configured.isBlank()) {
            return Optional.of(configured);
        }
        String path = Optional.ofNullable(System.getenv("PATH")).orElse("");
        return Stream.concat(Stream.of(path.split(File.pathSeparator)),
                        Stream.of(System.getProperty("user.home") + "/go/bin"))
                .map(d -> new File(d, "grpcurl"))
                .filter(File::canExecute)
                .map(File::getPath)
                .findFirst();
    }

    private static String run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("%s finished", cmd).isTrue();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.exitValue()).as("%s: %s", cmd, out).isZero();
        return out;
    }

    @Test
    void grpcurl_listsAndCallsTheService_byReflection() throws Exception {
        Optional<String> grpcurl = grpcurl();
        assumeTrue(grpcurl.isPresent(), "grpcurl is not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest)");
        String target = Stack.grpcTarget();
        assertThat(run(List.of(grpcurl.get(), "-plaintext", target, "list")))
                .contains("kvmesh.v1.KeyValue", "grpc.health.v1.Health");
        assertThat(run(List.of(grpcurl.get(), "-plaintext", target, "describe", "kvmesh.v1.KeyValue")))
                .contains("rpc Get", "rpc Put", "rpc Delete", "rpc List");
        String key = Stack.uniqueKey("grpcurl");
        // with auth on, the calls carry the suite's token (reflection and health stay open)
        List<String> auth = Stack.token().map(t -> List.of("-H", "authorization: Bearer " + t)).orElse(List.of());
        assertThat(run(Stream.of(List.of(grpcurl.get(), "-plaintext"), auth, List.of("-d",
                "{\"key\":\"" + key + "\",\"value\":\"hi\"}", target, "kvmesh.v1.KeyValue/Put"))
                .flatMap(List::stream).toList())).contains("\"status\": \"queued\"");
        await().atMost(Duration.ofSeconds(15)).untilAsserted(() ->
                assertThat(run(Stream.of(List.of(grpcurl.get(), "-plaintext"), auth, List.of("-d",
                        "{\"key\":\"" + key + "\"}", target, "kvmesh.v1.KeyValue/Get"))
                        .flatMap(List::stream).toList())).contains("\"value\": \"hi\""));
    }
}
