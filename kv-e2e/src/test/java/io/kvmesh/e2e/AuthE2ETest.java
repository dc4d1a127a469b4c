package io.kvmesh.e2e;

import com.google.gson.JsonObject;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.auth.Grant;
import io.kvmesh.auth.Permission;
import io.kvmesh.auth.Tokens;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static io.kvmesh.e2e.Stack.js;
import static io.kvmesh.e2e.Stack.q;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Auth on, through nginx → Envoy → replicas and over native gRPC: tokens minted with the stack's own signing key
 * (its run folder's secrets/), each scoped to a prefix of this run. scripts/e2e.sh runs the stack with KVMESH_AUTH=on.
 */
@Order(2)
class AuthE2ETest {
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String RUN = "e2e-auth-" + UUID.randomUUID() + "/";
    private static final String APP1 = RUN + "app1/";
    private static final String APP2 = RUN + "app2/";
    private static String app1ReadWrite;
    private static String app1ReadOnly;
    private static String app1Watch;

    @BeforeAll
    static void mintTokens() throws Exception {
        assumeTrue(Stack.token().isPresent(), "the stack under test has auth off (KVMESH_E2E_TOKEN is not set)");
        Path key = Stack.runDir().orElseThrow().resolve("secrets").resolve(Tokens.SIGNING_KEY_FILE);
        var signingKey = Tokens.readSigningKey(key);
        app1ReadWrite = Tokens.mint(signingKey, "e2e-app1-rw", List.of(new Grant(APP1,
                Permission.parseList("read,write"))), Duration.ofMinutes(10), Clock.systemUTC());
        app1ReadOnly = Tokens.mint(signingKey, "e2e-app1-ro", List.of(new Grant(APP1,
                Permission.parseList("read"))), Duration.ofMinutes(10), Clock.systemUTC());
        app1Watch = Tokens.mint(signingKey, "e2e-app1-watch", List.of(new Grant(APP1,
                Permission.parseList("watch"))), Duration.ofMinutes(10), Clock.systemUTC());
    }

    private static Stack.Reply send(String token, String method, String pathAndQuery, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(Stack.http() + pathAndQuery))
                .timeout(Duration.ofSeconds(20))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        if (body != null) {
            b.header("Content-Type", "application/json");
        }
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Stack.Reply(r.statusCode(), r.body(), r.headers().firstValue("content-type").orElse(""));
    }

    private static void assertError(Stack.Reply reply, int http, int grpcCode) {
        assertThat(reply.status()).as("%s", reply).isEqualTo(http);
        assertThat(reply.contentType()).startsWith("application/json");
        JsonObject json = reply.json();
        assertThat(json.get("code").getAsInt()).as("%s", reply).isEqualTo(grpcCode);
        assertThat(json.get("message").getAsString()).isNotBlank();
    }

    @Test
    void noOrABadToken_is401Json_onEveryRoute_andHealthStaysOpen() throws Exception {
        String key = APP1 + "x";
        assertError(send(null, "GET", "/kv?key=" + q(key), null), 401, 16);
        assertError(send(null, "PUT", "/api", "{\"key\":" + js(key) + ",\"value\":\"v\"}"), 401, 16);
        assertError(send(null, "GET", "/kv/all", null), 401, 16);
        assertError(send(null, "GET", "/kv/watch?prefix=" + q(APP1), null), 401, 16);
        assertError(send("not.a.token", "DELETE", "/kv?key=" + q(key), null), 401, 16);
        assertThat(send(null, "GET", "/kv?key=" + q(key), null).json().get("message").getAsString())
                .contains("Authorization: Bearer");
        assertThat(send(null, "GET", "/healthz", null).status()).isEqualTo(200);
    }

    @Test
    void anApp1Token_writesAndReadsApp1_andGets403OnApp2_orTheWholeKeySpace() throws Exception {
        String key = APP1 + "x";
        Stack.Reply put = send(app1ReadWrite, "PUT", "/kv",
                "{\"data\":{\"key\":" + js(key) + ",\"value\":\"one\"},\"mode\":\"SYNC\"}");
        assertThat(put.status()).as("%s", put).isEqualTo(200);
        assertThat(put.json().get("status").getAsString()).isEqualTo("applied");
        Stack.Reply get = send(app1ReadWrite, "GET", "/api?key=" + q(key), null);
        assertThat(get.json().getAsJsonObject("data").get("value").getAsString()).isEqualTo("one");
        Stack.Reply list = send(app1ReadWrite, "GET", "/kv/all?prefix=" + q(APP1), null);
        assertThat(list.status()).as("%s", list).isEqualTo(200);
        assertThat(list.json().getAsJsonArray("data").asList()).extracting(e -> e.getAsJsonObject().get("key").getAsString())
                .contains(key).allMatch(k -> k.startsWith(APP1));

        Stack.Reply other = send(app1ReadWrite, "PUT", "/api", "{\"key\":" + js(APP2 + "x") + ",\"value\":\"v\"}");
        assertError(other, 403, 7);
        assertThat(other.json().get("message").getAsString()).contains("write").contains(APP2 + "x");
        assertError(send(app1ReadWrite, "GET", "/kv?key=" + q(APP2 + "x"), null), 403, 7);
        assertError(send(app1ReadWrite, "GET", "/kv/all", null), 403, 7);
        assertError(send(app1ReadWrite, "GET", "/kv/all?prefix=" + q(RUN), null), 403, 7);
        assertError(send(app1ReadWrite, "GET", "/kv/watch?prefix=" + q(APP1), null), 403, 7);
        // nothing was written under app2/
        assertThat(Stack.get("/kv?key=" + q(APP2 + "x")).status()).isEqualTo(404);
    }

    @Test
    void aReadOnlyToken_cannotPutOrDelete_butReads() throws Exception {
        String key = APP1 + "ro";
        assertThat(Stack.put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}").status()).isEqualTo(200);
        assertError(send(app1ReadOnly, "PUT", "/api", "{\"key\":" + js(key) + ",\"value\":\"w\"}"), 403, 7);
        assertError(send(app1ReadOnly, "DELETE", "/kv?key=" + q(key), null), 403, 7);
        assertThat(send(app1ReadOnly, "GET", "/kv?key=" + q(key), null).json().getAsJsonObject("data")
                .get("value").getAsString()).isEqualTo("v");
    }

    @Test
    void watch_honoursThePrefix_withTheWatchPermission() throws Exception {
        String key = APP1 + "w";
        assertThat(Stack.put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}").status()).isEqualTo(200);
        // startVersion=1 replays the current state, so the first line arrives at once; the stream is then cut
        HttpRequest watch = HttpRequest.newBuilder(URI.create(Stack.http() + "/kv/watch?prefix=" + q(APP1)
                        + "&startVersion=1")).header("Authorization", "Bearer " + app1Watch).GET().build();
        HttpResponse<java.util.stream.Stream<String>> r = HTTP.send(watch, HttpResponse.BodyHandlers.ofLines());
        try (var lines = r.body()) {
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(lines.findFirst().orElseThrow()).contains(js(key).replace("\"", ""));
        }
        assertError(send(app1Watch, "GET", "/kv/watch?prefix=" + q(RUN), null), 403, 7);
        assertError(send(app1Watch, "GET", "/kv?key=" + q(key), null), 403, 7);
    }

    @Test
    void nativeGrpc_appliesTheSameRules() throws Exception {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(Stack.grpcTarget()).usePlaintext().build();
        try {
            Metadata md = new Metadata();
            md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + app1ReadWrite);
            var scoped = KeyValueGrpc.newBlockingStub(channel).withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md))
                    .withDeadlineAfter(10, TimeUnit.SECONDS);
            assertThat(scoped.put(PutRequest.newBuilder().setKey(APP1 + "g").setValue("v").build()).getStatus())
                    .isEqualTo("queued");
            StatusRuntimeException denied = catchThrowableOfType(StatusRuntimeException.class,
                    () -> scoped.put(PutRequest.newBuilder().setKey(APP2 + "g").setValue("v").build()));
            assertThat(denied.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
            StatusRuntimeException anonymous = catchThrowableOfType(StatusRuntimeException.class,
                    () -> KeyValueGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                            .get(GetRequest.newBuilder().setKey(APP1 + "g").build()));
            assertThat(anonymous.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
        } finally {
            Stack.close(channel);
        }
    }
}
