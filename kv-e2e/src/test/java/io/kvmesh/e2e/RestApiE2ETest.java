package io.kvmesh.e2e;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static io.kvmesh.e2e.Stack.delete;
import static io.kvmesh.e2e.Stack.get;
import static io.kvmesh.e2e.Stack.js;
import static io.kvmesh.e2e.Stack.put;
import static io.kvmesh.e2e.Stack.q;
import static io.kvmesh.e2e.Stack.send;
import static io.kvmesh.e2e.Stack.uniqueKey;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The public JSON API through nginx and Envoy's transcoder: both route families, exact shapes and status codes. */
@Order(1)
class RestApiE2ETest {
    private static final Duration APPLY = Duration.ofSeconds(15);

    /** The two route families the API serves. */
    enum Family {
        KV("/kv") {
            @Override
            String putBody(String key, String value) {
                return "{\"data\":{\"key\":" + js(key) + ",\"value\":" + js(value) + "}}";
            }
        },
        API("/api") {
            @Override
            String putBody(String key, String value) {
                return "{\"key\":" + js(key) + ",\"value\":" + js(value) + "}";
            }
        };

        final String path;

        Family(String path) {
            this.path = path;
        }

        abstract String putBody(String key, String value);
    }

    private static void assertQueued(Stack.Reply r) {
        assertThat(r.status()).as("%s", r).isEqualTo(200);
        JsonObject json = r.json();
        assertThat(json.keySet()).as("%s", r).containsExactlyInAnyOrder("status", "operationId", "version");
        assertThat(json.get("status").getAsString()).isEqualTo("queued");
        assertThat(json.get("version").getAsString()).isEqualTo("0");   // every field is printed, defaults too
        assertThat(json.get("operationId").getAsString()).isNotBlank();
    }

    private static void assertJsonError(Stack.Reply r) {
        assertThat(r.status()).as("%s", r).isBetween(400, 499);
        assertThat(r.isJson()).as("JSON error body: %s", r).isTrue();
        assertThat(r.json().has("message")).as("%s", r).isTrue();
    }

    private static JsonObject awaitEntry(Family f, String key, String value) {
        String path = f.path + "?key=" + q(key);
        await().atMost(APPLY).pollInterval(Duration.ofMillis(50)).until(() -> {
            Stack.Reply r = get(path);
            return r.status() == 200 && r.json().getAsJsonObject("data").get("value").getAsString().equals(value);
        });
        return get(path).json();
    }

    private static void awaitMissing(Family f, String key) {
        await().atMost(APPLY).pollInterval(Duration.ofMillis(50)).until(() -> get(f.path + "?key=" + q(key)).status() == 404);
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void put_isQueued_thenGetReturnsTheEntry(Family f) {
        String key = uniqueKey(f.name());
        assertQueued(put(f.path, f.putBody(key, "v1")));

        JsonObject got = awaitEntry(f, key, "v1");
        assertThat(got.keySet()).containsExactlyInAnyOrder("data", "source");
        assertThat(got.get("source").getAsString()).isIn("redis", "postgres");
        JsonObject data = got.getAsJsonObject("data");
        assertThat(data.get("key").getAsString()).isEqualTo(key);
        assertThat(data.get("value").getAsString()).isEqualTo("v1");
        assertThat(data.get("version").getAsString()).isEqualTo("1");    // int64 is a JSON string
        assertThat(data.keySet()).contains("createTime", "updateTime");
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void put_twice_lastWriteWins_andVersionGrows(Family f) {
        String key = uniqueKey(f.name());
        assertQueued(put(f.path, f.putBody(key, "a")));
        assertQueued(put(f.path, f.putBody(key, "b")));
        JsonObject data = awaitEntry(f, key, "b").getAsJsonObject("data");
        assertThat(data.get("version").getAsString()).isEqualTo("2");
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void get_returns404WithJsonBody_whenKeyMissing(Family f) {
        Stack.Reply r = get(f.path + "?key=" + q(uniqueKey("missing")));
        assertThat(r.status()).as("%s", r).isEqualTo(404);
        assertThat(r.json().get("code").getAsInt()).isEqualTo(5);   // google.rpc.Status with NOT_FOUND
        assertThat(r.json().get("message").getAsString()).isNotBlank();
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void delete_isQueued_thenGetReturns404OnceApplied(Family f) {
        String key = uniqueKey(f.name());
        assertQueued(put(f.path, f.putBody(key, "doomed")));
        awaitEntry(f, key, "doomed");
        assertQueued(delete(f.path + "?key=" + q(key)));
        awaitMissing(f, key);
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void list_pagesThroughAPrefixInKeyOrder(Family f) {
        String prefix = uniqueKey("list-" + f.name()) + "/";
        List<String> keys = List.of(prefix + "a", prefix + "b", prefix + "c");
        for (String k : keys) {
            assertQueued(put(f.path, f.putBody(k, "v-" + k)));
        }
        for (String k : keys) {
            awaitEntry(f, k, "v-" + k);
        }
        List<String> seen = new ArrayList<>();
        String token = "";
        int pages = 0;
        do {
            Stack.Reply r = get(f.path + "/all?prefix=" + q(prefix) + "&pageSize=2" + (token.isEmpty() ? "" : "&pageToken=" + q(token)));
            assertThat(r.status()).as("%s", r).isEqualTo(200);
            JsonObject json = r.json();
            JsonArray data = json.getAsJsonArray("data");
            assertThat(data.size()).isBetween(1, 2);
            data.forEach(e -> {
                JsonObject entry = e.getAsJsonObject();
                assertThat(entry.get("value").getAsString()).isEqualTo("v-" + entry.get("key").getAsString());
                seen.add(entry.get("key").getAsString());
            });
            token = json.has("nextPageToken") ? json.get("nextPageToken").getAsString() : "";
            pages++;
        } while (!token.isEmpty() && pages < 10);
        assertThat(seen).containsExactlyElementsOf(keys);
        assertThat(pages).isEqualTo(2);
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void list_ofAnUnusedPrefix_isEmpty(Family f) {
        Stack.Reply r = get(f.path + "/all?prefix=" + q(uniqueKey("none")));
        assertThat(r.status()).as("%s", r).isEqualTo(200);
        JsonObject json = r.json();
        assertThat(json.getAsJsonArray("data")).as("%s", r).isEmpty();
        assertThat(json.get("nextPageToken").getAsString()).isEmpty();
    }

    @Test
    void bytesThatAreNotUtf8_inAQuery_are400Json_onEveryRoute_theWatchIncluded() {
        for (String path : List.of("/api?key=%FF%FE", "/kv?key=%FF", "/api/all?prefix=%FF", "/kv/all?prefix=%FF",
                "/kv/operations/%FF", "/kv/watch?prefix=%FF")) {
            Stack.Reply r = get(path);
            assertThat(r.status()).as("GET %s: %s", path, r).isEqualTo(400);
            assertThat(r.json().get("code").getAsInt()).as("GET %s", path).isEqualTo(3);
        }
        Stack.Reply del = delete("/api?key=%FF");
        assertThat(del.status()).as("%s", del).isEqualTo(400);
        // a Watch the service refuses for another reason is an HTTP error too, not 200 with an error inside
        assertThat(get("/kv/watch?prefix=w&startVersion=-1").status()).isEqualTo(400);
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void badInput_gets4xxWithJsonBody_andWritesNothing(Family f) {
        String key = uniqueKey("bad-" + f.name());
        assertJsonError(put(f.path, "{not json"));
        assertJsonError(put(f.path, f.putBody("", "value without a key")));
        assertJsonError(put(f.path, f.putBody(key, "x".repeat(1024 * 1024 + 1))));      // value limit 1 MiB
        // well over the limit, yet under nginx's 2 MiB body limit: refused by the validator as too large (400),
        // not by the replica's gRPC message size check (429)
        Stack.Reply over = put(f.path, f.putBody(key, "x".repeat(1_500_000)));
        assertThat(over.status()).as("%s", over).isEqualTo(400);
        assertThat(over.json().get("message").getAsString()).contains("the limit is 1048576");
        assertJsonError(put(f.path, f.putBody("k".repeat(1025), "v")));                  // key limit 1024 bytes
        assertJsonError(delete(f.path + "?key="));
        assertJsonError(get(f.path + "?key="));
        assertJsonError(get(f.path + "/all?pageSize=-1"));
        // nothing written: a write queued after the bad ones is applied, the rejected key stays absent
        String sentinel = uniqueKey("sentinel");
        assertQueued(put(f.path, f.putBody(sentinel, "ok")));
        awaitEntry(f, sentinel, "ok");
        await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(3))
                .until(() -> get(f.path + "?key=" + q(key)).status() == 404);
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void unknownRouteOrWrongMethod_gets4xxWithJsonBody(Family f) {
        assertJsonError(get(f.path + "/no-such-route"));
        assertJsonError(send("POST", f.path, f.putBody("k", "v")));
        assertJsonError(send("PATCH", f.path, f.putBody("k", "v")));
        assertJsonError(send("DELETE", f.path + "/all", null));
    }

    @Test
    void bodyLargerThanTheEdgeLimit_gets413WithJsonBody() {
        Stack.Reply r = put("/api", "{\"key\":\"big\",\"value\":\"" + "x".repeat(3 * 1024 * 1024) + "\"}");
        assertThat(r.status()).as("status").isEqualTo(413);
        assertThat(r.isJson()).isTrue();
    }

    @Test
    void unknownPath_outsideTheApi_gets404WithJsonBody() {
        Stack.Reply r = get("/no-such-page");
        assertThat(r.status()).isEqualTo(404);
        assertThat(r.isJson()).isTrue();
    }

    @Test
    void healthz_isOk_andTheWebPageIsServed() {
        Stack.Reply h = get("/healthz");
        assertThat(h.status()).as("%s", h).isEqualTo(200);
        assertThat(h.json().get("status").getAsString()).isEqualTo("ok");
        Stack.Reply page = get("/");
        assertThat(page.status()).isEqualTo(200);
        assertThat(page.contentType()).startsWith("text/html");
        assertThat(page.body()).contains("<title>kvmesh</title>");
    }

}
