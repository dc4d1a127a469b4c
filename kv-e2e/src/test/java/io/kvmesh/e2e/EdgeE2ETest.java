package io.kvmesh.e2e;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.grpc.ManagedChannel;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WriteMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.kvmesh.e2e.Stack.get;
import static io.kvmesh.e2e.Stack.js;
import static io.kvmesh.e2e.Stack.put;
import static io.kvmesh.e2e.Stack.q;
import static io.kvmesh.e2e.Stack.uniqueKey;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The public edge as a new user and a fuzzer meet it (issue 11): values at the limit readable on every route, the JSON
 * shapes of empty results, forgiving query strings, 405 with Allow, one JSON error scheme with gRPC codes for every
 * status nginx and Envoy answer themselves, strict JSON, and Watch's HTTP headers.
 */
@Order(4)
class EdgeE2ETest {
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private static ManagedChannel channel;

    @BeforeAll
    static void connect() {
        channel = Stack.channel();
    }

    @AfterAll
    static void disconnect() throws InterruptedException {
        Stack.close(channel);
    }

    /** One exchange with every response header kept. */
    record Full(int status, String body, HttpHeaders headers) {
        JsonObject json() {
            return JsonParser.parseString(body).getAsJsonObject();
        }

        String header(String name) {
            return headers.firstValue(name).orElse(null);
        }

        @Override
        public String toString() {
            return status + " " + headers.map() + " " + (body.length() > 300 ? body.substring(0, 300) + "…" : body);
        }
    }

    private static Full exchange(String method, String pathAndQuery, String body, Map<String, String> headers) {
        HttpRequest.Builder b = Stack.request(pathAndQuery).timeout(Duration.ofSeconds(30));
        headers.forEach(b::header);
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        try {
            HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
            return new Full(r.statusCode(), r.body(), r.headers());
        } catch (IOException e) {
            throw new AssertionError(method + " " + pathAndQuery + " failed: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** The error scheme of the whole public port: JSON {"code":<gRPC code>,"message":...} with the given HTTP status. */
    private static void assertError(Full r, int status, int grpcCode) {
        assertThat(r.status()).as("%s", r).isEqualTo(status);
        assertThat(r.header("content-type")).as("%s", r).startsWith("application/json");
        JsonObject json = r.json();
        assertThat(json.get("code").getAsInt()).as("%s", r).isEqualTo(grpcCode);
        assertThat(json.get("message").getAsString()).as("%s", r).isNotBlank();
    }

    /** A value of exactly 1 MiB made of characters JSON must escape (\u0001 prints as 6 bytes): the worst case. */
    private static String worstCaseValue(char filler) {
        return "<\"&>" + String.valueOf(filler).repeat(1024 * 1024 - 4);
    }

    @Test
    void valuesAtTheLimit_areReadableThroughEveryRestRoute_evenWhenJsonEscapingGrowsThemSixfold() throws Exception {
        String prefix = uniqueKey("big") + "/";
        KeyValueGrpc.KeyValueBlockingStub kv = KeyValueGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
        List<String> keys = List.of(prefix + "a", prefix + "b", prefix + "c");
        List<String> values = List.of(worstCaseValue('\u0001'), worstCaseValue('x'), worstCaseValue('\u001f'));
        for (int i = 0; i < keys.size(); i++) {   // over gRPC: 6 MiB of JSON would not pass nginx's 2 MiB body limit
            kv.withDeadlineAfter(30, TimeUnit.SECONDS).put(PutRequest.newBuilder().setKey(keys.get(i))
                    .setValue(values.get(i)).setMode(WriteMode.SYNC).build());
        }
        // and one written over REST through nginx: 1 MiB of plain characters
        String restKey = prefix + "d";
        String restValue = "v".repeat(1024 * 1024);
        Stack.Reply written = put("/api", "{\"key\":" + js(restKey) + ",\"value\":\"" + restValue + "\",\"mode\":\"SYNC\"}");
        assertThat(written.status()).as("%s", written.status() + " " + written.body()).isEqualTo(200);

        for (String family : List.of("/api", "/kv")) {
            for (int i = 0; i < keys.size(); i++) {
                Stack.Reply r = get(family + "?key=" + q(keys.get(i)));
                assertThat(r.status()).as("%s %s: %s", family, keys.get(i), r.body().length() > 200 ? r.body().substring(0, 200) : r.body())
                        .isEqualTo(200);
                assertThat(r.json().getAsJsonObject("data").get("value").getAsString()).isEqualTo(values.get(i));
            }
            assertThat(get(family + "?key=" + q(restKey)).json().getAsJsonObject("data").get("value").getAsString())
                    .isEqualTo(restValue);
            // the listing: every entry on some page (the service may split pages by size)
            List<String> seen = new ArrayList<>();
            String token = "";
            int pages = 0;
            do {
                Stack.Reply r = get(family + "/all?prefix=" + q(prefix) + (token.isEmpty() ? "" : "&pageToken=" + q(token)));
                assertThat(r.status()).as("%s/all page %d: %s", family, pages,
                        r.body().length() > 200 ? r.body().substring(0, 200) : r.body()).isEqualTo(200);
                JsonObject page = r.json();
                for (var e : page.getAsJsonArray("data")) {
                    JsonObject entry = e.getAsJsonObject();
                    seen.add(entry.get("key").getAsString());
                    assertThat(entry.get("value").getAsString()).hasSize(1024 * 1024);
                }
                token = page.has("nextPageToken") ? page.get("nextPageToken").getAsString() : "";
                pages++;
            } while (!token.isEmpty() && pages < 10);
            assertThat(seen).containsExactly(keys.get(0), keys.get(1), keys.get(2), restKey);
        }
        // the Watch route: the catch-up of a resumed watch carries the 1 MiB value
        HttpRequest watch = Stack.request("/kv/watch?prefix=" + q(keys.get(0)) + "&startVersion=1")
                .GET().build();
        HttpResponse<InputStream> stream = HTTP.send(watch, HttpResponse.BodyHandlers.ofInputStream());
        try (BufferedReader lines = new BufferedReader(new InputStreamReader(stream.body(), StandardCharsets.UTF_8))) {
            JsonObject event = JsonParser.parseString(lines.readLine()).getAsJsonObject();
            assertThat(event.get("key").getAsString()).isEqualTo(keys.get(0));
            assertThat(event.get("value").getAsString()).isEqualTo(values.get(0));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"/api", "/kv"})
    void anEmptyListing_hasAnEmptyDataArray(String family) {
        Stack.Reply r = get(family + "/all?prefix=" + q(uniqueKey("none") + "/"));
        assertThat(r.status()).as("%s", r).isEqualTo(200);
        assertThat(r.json().has("data")).as("%s", r).isTrue();
        assertThat(r.json().getAsJsonArray("data")).as("%s", r).isEmpty();
        assertThat(r.json().get("nextPageToken").getAsString()).isEmpty();
    }

    @Test
    void unknownQueryParameters_areIgnored_onEveryGetAndDelete() {
        String key = uniqueKey("qp");
        assertThat(put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}").status()).isEqualTo(200);
        for (String path : List.of("/api?key=" + q(key) + "&_=123", "/kv?key=" + q(key) + "&foo=1",
                "/api/all?prefix=" + q(key) + "&_=1", "/kv/all?prefix=" + q(key) + "&cache=no")) {
            Stack.Reply r = get(path);
            assertThat(r.status()).as("GET %s: %s", path, r).isEqualTo(200);
        }
        Stack.Reply del = Stack.delete("/api?key=" + q(key) + "&mode=SYNC&_=1700000000");
        assertThat(del.status()).as("%s", del).isEqualTo(200);
        assertThat(del.json().get("version").getAsString()).isEqualTo("2");
    }

    @Test
    void aPlusInTheQueryString_isASpace_asFormEncodingSendsIt() {
        String key = uniqueKey("plus") + " with spaces";
        assertThat(put("/api", "{\"key\":" + js(key) + ",\"value\":\"spaced\",\"mode\":\"SYNC\"}").status()).isEqualTo(200);
        String formEncoded = key.replace(" ", "+");
        Stack.Reply got = get("/api?key=" + formEncoded);
        assertThat(got.status()).as("%s", got).isEqualTo(200);
        assertThat(got.json().getAsJsonObject("data").get("key").getAsString()).isEqualTo(key);
        Stack.Reply del = Stack.delete("/kv?key=" + formEncoded + "&mode=SYNC");
        assertThat(del.json().get("version").getAsString()).as("the delete hit the spaced key: %s", del).isEqualTo("2");
        assertThat(get("/api?key=" + q(key)).status()).isEqualTo(404);
    }

    @Test
    void wrongMethods_get405WithAllowAndAJsonBody() {
        Map<String, String> allowed = Map.of("/api", "GET, PUT, DELETE", "/kv", "GET, PUT, DELETE", "/api/all", "GET",
                "/kv/all", "GET", "/kv/operations/some-id", "GET", "/kv/watch", "GET");
        allowed.forEach((path, allow) -> {
            for (String method : List.of("POST", "PATCH", "OPTIONS")) {
                Full r = exchange(method, path, method.equals("OPTIONS") ? null : "{}", Map.of());
                assertError(r, 405, 12);
                assertThat(r.header("allow")).as("%s %s", method, path).isEqualTo(allow);
            }
        });
        for (String method : List.of("POST", "DELETE", "PUT")) {
            Full r = exchange(method, "/healthz", null, Map.of());
            assertError(r, 405, 12);
            assertThat(r.header("allow")).isEqualTo("GET, HEAD");
        }
        assertThat(exchange("GET", "/healthz", null, Map.of()).status()).isEqualTo(200);
    }

    @Test
    void errorsAnsweredByNginxAndEnvoy_useTheServicesScheme_withGrpcCodes() throws Exception {
        assertError(exchange("GET", "/no-such-page", null, Map.of()), 404, 5);                       // nginx
        assertError(exchange("GET", "/api/no-such-route", null, Map.of()), 404, 5);                  // Envoy
        assertError(exchange("PUT", "/api", "{not json", Map.of("Content-Type", "application/json")), 400, 3);
        assertError(exchange("GET", "/kv/all?pageSize=abc", null, Map.of()), 400, 3);
        assertError(exchange("PUT", "/api", "{\"key\":\"big\",\"value\":\"" + "x".repeat(3 * 1024 * 1024) + "\"}",
                Map.of("Content-Type", "application/json")), 413, 8);
        assertError(exchange("GET", "/api?key=" + "k".repeat(10_000), null, Map.of()), 414, 8);
        assertError(exchange("GET", "/api?key=a", null, Map.of("X-Big", "h".repeat(20_000))), 400, 8);
        // what HttpClient will not send: a path escaping the root, an empty Host
        for (String raw : List.of("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "GET /api?key=a HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")) {
            URI base = URI.create(Stack.http());
            try (Socket s = new Socket(base.getHost(), base.getPort())) {
                s.setSoTimeout(10_000);
                s.getOutputStream().write(raw.getBytes(StandardCharsets.US_ASCII));
                String reply = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertThat(reply).as(raw).startsWith("HTTP/1.1 400").containsIgnoringCase("content-type: application/json")
                        .contains("{\"code\":3,");
            }
        }
        // a service error keeps its own code
        Full missing = exchange("GET", "/api?key=" + q(uniqueKey("missing")), null, Map.of());
        assertError(missing, 404, 5);
    }

    @Test
    void invalidJsonEscapes_are400_andWriteNothing() {
        String key = uniqueKey("badesc");
        for (String body : List.of("{\"key\":" + js(key) + ",\"value\":\"a\\qb\"}", "{\"key\":" + js(key) + ",\"value\":\"\\u12\"}",
                "{\"key\":" + js(key) + ",\"value\":\"a\\\"}")) {
            Full r = exchange("PUT", "/api", body, Map.of("Content-Type", "application/json"));
            assertError(r, 400, 3);
        }
        Full kv = exchange("PUT", "/kv", "{\"data\":{\"key\":" + js(key) + ",\"value\":\"\\x41\"}}", Map.of("Content-Type", "application/json"));
        assertError(kv, 400, 3);
        // every valid escape still works
        Full ok = exchange("PUT", "/api", "{\"key\":" + js(key) + ",\"value\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\",\"mode\":\"SYNC\"}",
                Map.of("Content-Type", "application/json"));
        assertThat(ok.status()).as("%s", ok).isEqualTo(200);
        assertThat(ok.json().get("version").getAsString()).as("nothing written before: %s", ok).isEqualTo("1");
        assertThat(get("/api?key=" + q(key)).json().getAsJsonObject("data").get("value").getAsString())
                .isEqualTo("\"\\/\b\f\n\r\t\u00e9");
    }

    @ParameterizedTest
    @ValueSource(strings = {"text/plain", "application/x-www-form-urlencoded", ""})
    void aJsonBody_isAccepted_whateverItsContentType(String contentType) {
        String key = uniqueKey("ctype");
        Map<String, String> headers = contentType.isEmpty() ? Map.of() : Map.of("Content-Type", contentType);
        Full r = exchange("PUT", "/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}", headers);
        assertThat(r.status()).as("%s", r).isEqualTo(200);
        assertThat(r.json().get("status").getAsString()).isEqualTo("applied");
    }

    @Test
    void watchOverHttp_isNdjson_withNoGrpcHeaders() throws Exception {
        String prefix = uniqueKey("ndjson") + "/";
        assertThat(put("/api", "{\"key\":" + js(prefix + "k") + ",\"value\":\"v\",\"mode\":\"SYNC\"}").status()).isEqualTo(200);
        // a resumed watch: its catch-up event comes at once, and with it the headers (Envoy's transcoder sends an HTTP
        // stream's headers with its first message)
        HttpRequest watch = Stack.request("/kv/watch?prefix=" + q(prefix) + "&startVersion=1")
                .GET().build();
        HttpResponse<InputStream> r = HTTP.sendAsync(watch, HttpResponse.BodyHandlers.ofInputStream()).get(20, TimeUnit.SECONDS);
        try (BufferedReader lines = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.headers().firstValue("content-type")).hasValue("application/x-ndjson");
            assertThat(r.headers().map().keySet()).noneMatch(h -> h.toLowerCase().startsWith("grpc-"))
                    .doesNotContain("x-envoy-upstream-service-time");
            assertThat(JsonParser.parseString(lines.readLine()).getAsJsonObject().get("key").getAsString()).isEqualTo(prefix + "k");
        }
        // an error before the stream starts stays JSON
        Full bad = exchange("GET", "/kv/watch?startVersion=abc", null, Map.of());
        assertError(bad, 400, 3);
        // unary calls carry no gRPC headers either
        Full got = exchange("GET", "/api/all?prefix=" + q(prefix), null, Map.of());
        assertThat(got.headers().map().keySet()).noneMatch(h -> h.toLowerCase().startsWith("grpc-"))
                .doesNotContain("x-envoy-upstream-service-time");
    }

    @Test
    void everyResponse_printsItsFieldsWithDefaults_soShapesNeverLoseAField() {
        String key = uniqueKey("shape");
        JsonObject queued = put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\"}").json();
        assertThat(queued.keySet()).containsExactlyInAnyOrder("status", "operationId", "version");
        assertThat(queued.get("version").getAsString()).isEqualTo("0");
        JsonObject gone = Stack.delete("/api?key=" + q(uniqueKey("never-written")) + "&mode=SYNC").json();
        assertThat(gone.get("status").getAsString()).isEqualTo("applied");
        assertThat(gone.get("version").getAsString()).isEqualTo("0");
        JsonArray none = get("/kv/all?prefix=" + q(key + "/nothing")).json().getAsJsonArray("data");
        assertThat(none).isEmpty();
    }
}
