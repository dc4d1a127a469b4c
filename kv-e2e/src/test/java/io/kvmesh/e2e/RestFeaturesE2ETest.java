package io.kvmesh.e2e;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static io.kvmesh.e2e.Stack.get;
import static io.kvmesh.e2e.Stack.js;
import static io.kvmesh.e2e.Stack.put;
import static io.kvmesh.e2e.Stack.q;
import static io.kvmesh.e2e.Stack.uniqueKey;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** SYNC, conditional writes, TTL, operation status, Watch and idempotent retries through nginx → Envoy → replicas. */
@Order(3)
class RestFeaturesE2ETest {

    @Test
    void syncPut_answersAppliedWithVersion_andTheNextGetSeesIt_inBothFamilies() {
        String key = uniqueKey("sync");
        Stack.Reply kv = put("/kv", "{\"data\":{\"key\":" + js(key) + ",\"value\":\"one\"},\"mode\":\"SYNC\"}");
        assertThat(kv.status()).as("%s", kv).isEqualTo(200);
        assertThat(kv.json().get("status").getAsString()).isEqualTo("applied");
        assertThat(kv.json().get("version").getAsString()).isEqualTo("1");
        assertThat(get("/kv?key=" + q(key)).json().getAsJsonObject("data").get("value").getAsString()).isEqualTo("one");

        Stack.Reply api = put("/api", "{\"key\":" + js(key) + ",\"value\":\"two\",\"mode\":\"SYNC\"}");
        assertThat(api.json().get("version").getAsString()).isEqualTo("2");
        assertThat(get("/api?key=" + q(key)).json().getAsJsonObject("data").get("value").getAsString()).isEqualTo("two");

        Stack.Reply del = Stack.delete("/kv?key=" + q(key) + "&mode=SYNC");
        assertThat(del.json().get("status").getAsString()).as("%s", del).isEqualTo("applied");
        assertThat(get("/kv?key=" + q(key)).status()).isEqualTo(404);
    }

    @Test
    void putMany_postKvBatch_queuesEveryPut_andAMalformedOneIs400NamingItsIndex() {
        String a = uniqueKey("batch"), b = uniqueKey("batch");
        Stack.Reply r = Stack.send("POST", "/kv/batch", "{\"puts\":[{\"key\":" + js(a) + ",\"value\":\"1\"},"
                + "{\"key\":" + js(b) + ",\"value\":\"2\",\"mode\":\"SYNC\"}]}");
        assertThat(r.status()).as("%s", r).isEqualTo(200);
        assertThat(r.json().getAsJsonArray("results")).hasSize(2);
        assertThat(r.json().getAsJsonArray("results").get(1).getAsJsonObject().get("status").getAsString())
                .isEqualTo("applied");
        assertThat(get("/kv?key=" + q(b)).json().getAsJsonObject("data").get("value").getAsString()).isEqualTo("2");
        await().atMost(Duration.ofSeconds(15)).until(() -> get("/kv?key=" + q(a)).status() == 200);

        String c = uniqueKey("batch");
        Stack.Reply bad = Stack.send("POST", "/kv/batch", "{\"puts\":[{\"key\":" + js(c) + ",\"value\":\"1\"},"
                + "{\"key\":\"\",\"value\":\"2\"}]}");
        assertThat(bad.status()).as("%s", bad).isEqualTo(400);
        assertThat(bad.json().get("message").getAsString()).startsWith("puts[1]: key must not be empty");
        assertThat(get("/kv?key=" + q(c)).status()).isEqualTo(404);
    }

    @Test
    void conditionalPut_conflictIs409WithCurrentVersionInDetails_andIsRecordedRejected() {
        String key = uniqueKey("cas");
        String body = "{\"key\":" + js(key) + ",\"value\":\"v\",\"expectedVersion\":\"0\",\"mode\":\"SYNC\"}";
        assertThat(put("/api", body).json().get("status").getAsString()).isEqualTo("applied");
        Stack.Reply conflict = put("/api", body);
        assertThat(conflict.status()).as("%s", conflict).isEqualTo(409);
        JsonObject error = conflict.json();
        assertThat(error.get("message").getAsString()).contains("expected version 0, current version 1");
        JsonObject info = error.getAsJsonArray("details").get(0).getAsJsonObject();
        assertThat(info.get("@type").getAsString()).endsWith("google.rpc.ErrorInfo");
        assertThat(info.getAsJsonObject("metadata").get("current_version").getAsString()).isEqualTo("1");
        String rejected = info.getAsJsonObject("metadata").get("operation_id").getAsString();

        JsonObject op = get("/kv/operations/" + q(rejected)).json().getAsJsonObject("data");
        assertThat(op.get("state").getAsString()).isEqualTo("REJECTED");
        assertThat(op.get("reason").getAsString()).contains("version conflict");
    }

    @Test
    void operationStatus_appliedWithVersion_unknownIs404() {
        String key = uniqueKey("op");
        String id = put("/kv", "{\"data\":{\"key\":" + js(key) + ",\"value\":\"v\"}}").json().get("operationId").getAsString();
        await().atMost(Duration.ofSeconds(15)).until(() -> {
            Stack.Reply r = get("/kv/operations/" + q(id));
            return r.status() == 200 && r.json().getAsJsonObject("data").get("state").getAsString().equals("APPLIED");
        });
        JsonObject op = get("/kv/operations/" + q(id)).json().getAsJsonObject("data");
        assertThat(op.get("version").getAsString()).isEqualTo("1");
        assertThat(op.get("key").getAsString()).isEqualTo(key);
        Stack.Reply unknown = get("/kv/operations/no-such-operation");
        assertThat(unknown.status()).isEqualTo(404);
        assertThat(unknown.json().get("message").getAsString()).contains("not found");
    }

    @Test
    void ttl_entryCarriesItsExpiry_andIsGoneAfterIt() {
        String key = uniqueKey("ttl");
        put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"ttl\":\"1s\",\"mode\":\"SYNC\"}");
        Stack.Reply got = get("/api?key=" + q(key));
        assertThat(got.json().getAsJsonObject("data").has("expireTime")).as("%s", got).isTrue();
        await().atMost(Duration.ofSeconds(10)).until(() -> get("/api?key=" + q(key)).status() == 404);
        assertThat(put("/api", "{\"key\":\"k\",\"value\":\"v\",\"ttl\":\"-1s\"}").status()).isEqualTo(400);
    }

    @Test
    void retries_withTheSameRequestIdOrXRequestId_carryOneOperation() throws Exception {
        String key = uniqueKey("retry");
        String body = "{\"key\":" + js(key) + ",\"value\":\"v\",\"requestId\":\"" + key + "\"}";
        String first = put("/api", body).json().get("operationId").getAsString();
        String second = put("/api", body).json().get("operationId").getAsString();
        assertThat(second).isEqualTo(first);

        String key2 = uniqueKey("xrid");
        HttpClient http = HttpClient.newHttpClient();
        HttpRequest withHeader = Stack.request("/api")
                .header("Content-Type", "application/json").header("x-request-id", key2)
                .PUT(HttpRequest.BodyPublishers.ofString("{\"key\":" + js(key2) + ",\"value\":\"v\"}")).build();
        String a = JsonParser.parseString(http.send(withHeader, HttpResponse.BodyHandlers.ofString()).body())
                .getAsJsonObject().get("operationId").getAsString();
        String b = JsonParser.parseString(http.send(withHeader, HttpResponse.BodyHandlers.ofString()).body())
                .getAsJsonObject().get("operationId").getAsString();
        assertThat(b).isEqualTo(a);
        await().atMost(Duration.ofSeconds(15)).until(() -> get("/api?key=" + q(key2)).status() == 200);
        await().atMost(Duration.ofSeconds(15)).until(() -> get("/api?key=" + q(key)).status() == 200);
        assertThat(get("/api?key=" + q(key)).json().getAsJsonObject("data").get("version").getAsString()).isEqualTo("1");
        assertThat(get("/api?key=" + q(key2)).json().getAsJsonObject("data").get("version").getAsString()).isEqualTo("1");
    }

    private static Stack.Reply putWithHeader(String path, String body, String header, String value) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(Stack.request(path)
                .header("Content-Type", "application/json").header(header, value)
                .PUT(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        return new Stack.Reply(r.statusCode(), r.body(), r.headers().firstValue("content-type").orElse(""));
    }

    private static void assertRefusedAsReused(Stack.Reply r) {
        assertThat(r.status()).as("%s", r).isEqualTo(400);
        assertThat(r.json().get("code").getAsInt()).isEqualTo(9); // FAILED_PRECONDITION
        assertThat(r.json().get("message").getAsString()).contains("was already used for a different write");
        assertThat(r.body()).contains("REQUEST_ID_REUSED");
    }

    @Test
    void requestIdReused_forAnotherWrite_is400JsonAndNothingIsWritten_inEveryFormOfTheId() throws Exception {
        String a = uniqueKey("reuse-a");
        String b = uniqueKey("reuse-b");
        String id = uniqueKey("shared-id");
        // the x-request-id header (the reproduction), both route families
        Stack.Reply first = putWithHeader("/kv", "{\"data\":{\"key\":" + js(a) + ",\"value\":\"1\"},\"mode\":\"SYNC\"}",
                "x-request-id", id);
        assertThat(first.json().get("status").getAsString()).as("%s", first).isEqualTo("applied");
        assertRefusedAsReused(putWithHeader("/kv", "{\"data\":{\"key\":" + js(b) + ",\"value\":\"1\"}}",
                "x-request-id", id));
        assertRefusedAsReused(putWithHeader("/api", "{\"key\":" + js(a) + ",\"value\":\"2\"}", "x-request-id", id));
        // the body's requestId and the standard Idempotency-Key header name the same request
        assertRefusedAsReused(put("/api", "{\"key\":" + js(b) + ",\"value\":\"1\",\"requestId\":" + js(id) + "}"));
        assertRefusedAsReused(putWithHeader("/api", "{\"key\":" + js(b) + ",\"value\":\"1\"}", "Idempotency-Key", id));
        // an identical retry gets the first outcome
        Stack.Reply retry = putWithHeader("/kv", "{\"data\":{\"key\":" + js(a) + ",\"value\":\"1\"},\"mode\":\"SYNC\"}",
                "Idempotency-Key", id);
        assertThat(retry.json().get("operationId").getAsString()).isEqualTo(first.json().get("operationId").getAsString());
        assertThat(retry.json().get("version").getAsString()).isEqualTo("1");

        assertThat(get("/api?key=" + q(b)).status()).isEqualTo(404);
        Stack.Reply now = get("/api?key=" + q(a));
        assertThat(now.json().getAsJsonObject("data").get("value").getAsString()).isEqualTo("1");
        assertThat(now.json().getAsJsonObject("data").get("version").getAsString()).isEqualTo("1");
    }

    /** Opens {@code /kv/watch?query} through nginx; every line lands in {@code lines}; done when the stream ends. */
    private static CompletableFuture<Void> watchLines(String query, List<String> lines) {
        HttpRequest watch = Stack.request("/kv/watch?" + query).GET().build();
        return HttpClient.newHttpClient().sendAsync(watch, HttpResponse.BodyHandlers.ofLines())
                .thenAcceptAsync(r -> r.body().forEach(lines::add));
    }

    @Test
    void idleWatch_throughNginx_outlivesEveryIdleTimeoutOnItsPath_withAndWithoutProgress() {
        String prefix = uniqueKey("idle") + "/";
        List<String> quiet = new CopyOnWriteArrayList<>();
        List<String> progress = new CopyOnWriteArrayList<>();
        CompletableFuture<Void> quietWatch = watchLines("prefix=" + q(prefix), quiet);
        CompletableFuture<Void> progressWatch = watchLines("prefix=" + q(prefix) + "&progressNotify=true", progress);
        // 65 s without a change: longer than nginx's default proxy_read_timeout (60 s) and than the ~30 s after which
        // the replica used to answer Envoy's keepalive pings with GOAWAY; both streams must stay open all along
        await().during(Duration.ofSeconds(65)).atMost(Duration.ofSeconds(70)).pollInterval(Duration.ofSeconds(1))
                .until(() -> !quietWatch.isDone() && !progressWatch.isDone());
        assertThat(quiet).isEmpty();
        assertThat(progress).hasSizeGreaterThanOrEqualTo(3)
                .allSatisfy(l -> assertThat(JsonParser.parseString(l).getAsJsonObject().get("type").getAsString())
                        .isEqualTo("PROGRESS"));

        put("/api", "{\"key\":" + js(prefix + "k") + ",\"value\":\"after the quiet\"}");
        await().atMost(Duration.ofSeconds(15)).until(() -> quiet.size() == 1
                && progress.stream().anyMatch(l -> l.contains("\"PUT\"")));
        JsonObject event = JsonParser.parseString(quiet.getFirst()).getAsJsonObject();
        assertThat(event.get("type").getAsString()).isEqualTo("PUT");
        assertThat(event.get("value").getAsString()).isEqualTo("after the quiet");
        quietWatch.cancel(true);
        progressWatch.cancel(true);
    }

    @Test
    void watch_streamsNewlineDelimitedEvents_unbufferedThroughNginx() throws Exception {
        String prefix = uniqueKey("watch") + "/";
        List<String> lines = new CopyOnWriteArrayList<>();
        HttpClient http = HttpClient.newHttpClient();
        HttpRequest watch = Stack.request("/kv/watch?prefix=" + q(prefix)).GET().build();
        CompletableFuture<HttpResponse<Stream<String>>> response = http.sendAsync(watch, HttpResponse.BodyHandlers.ofLines());
        CompletableFuture<Void> reader = response.thenAcceptAsync(r -> r.body().forEach(lines::add));
        AtomicInteger n = new AtomicInteger();
        // the stream's headers come with its first event: keep writing until one arrives
        await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(300)).until(() -> {
            put("/api", "{\"key\":" + js(prefix + "k") + ",\"value\":\"v" + n.incrementAndGet() + "\"}");
            return !lines.isEmpty();
        });
        assertThat(response.get().statusCode()).isEqualTo(200);
        JsonObject event = JsonParser.parseString(lines.getFirst()).getAsJsonObject();
        assertThat(event.get("type").getAsString()).isEqualTo("PUT");
        assertThat(event.get("key").getAsString()).isEqualTo(prefix + "k");
        assertThat(event.get("version").getAsString()).isEqualTo("1");
        assertThat(event.get("operationId").getAsString()).isNotBlank();

        Stack.delete("/kv?key=" + q(prefix + "k"));
        await().atMost(Duration.ofSeconds(15)).until(() -> lines.stream().anyMatch(l -> l.contains("\"DELETE\"")));
        reader.cancel(true);
        response.cancel(true);
    }
}
