package io.kvmesh.e2e;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.kvmesh.e2e.Stack.get;
import static io.kvmesh.e2e.Stack.js;
import static io.kvmesh.e2e.Stack.put;
import static io.kvmesh.e2e.Stack.q;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Each replica's admin port answers /healthz and /metrics (Prometheus text) with the gRPC and kvmesh meters, and the
 * meters count the requests just sent through the edge. The admin ports come from KVMESH_E2E_REPLICA_ADMIN_PORTS
 * (scripts/e2e.sh) or the run folder's stack.env.
 */
class MetricsE2ETest {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final List<Integer> ADMIN_PORTS = new ArrayList<>();

    @BeforeAll
    static void adminPorts() throws IOException {
        String ports = System.getenv("KVMESH_E2E_REPLICA_ADMIN_PORTS");
        if ((ports == null || ports.isBlank()) && Stack.runDir().isPresent()) {
            Path env = Stack.runDir().get().resolve("stack.env");
            if (Files.exists(env)) {
                Matcher m = Pattern.compile("(?m)^KVMESH_REPLICA_ADMIN_PORTS=(\\S+)$").matcher(Files.readString(env));
                ports = m.find() ? m.group(1).replace("\\", "") : null;
            }
        }
        assumeTrue(ports != null && !ports.isBlank(), "no replica admin ports (KVMESH_E2E_REPLICA_ADMIN_PORTS)");
        for (String p : ports.split(",")) {
            ADMIN_PORTS.add(Integer.parseInt(p.trim()));
        }
    }

    private static HttpResponse<String> admin(int port, String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The sum of one series over every replica, e.g. the Get count: {@code name{...labels containing each of…}}. */
    private static double sum(String name, String... labels) throws Exception {
        double total = 0;
        for (int port : ADMIN_PORTS) {
            for (String line : admin(port, "/metrics").body().split("\n")) {
                if (line.startsWith(name + "{") && List.of(labels).stream().allMatch(line::contains)) {
                    total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
        }
        return total;
    }

    @Test
    void everyReplica_servesHealthzAndPrometheusText_withTheKvmeshMeters() throws Exception {
        String key = Stack.uniqueKey("metrics");
        double getsBefore = sum("grpc_server_processing_duration_seconds_count", "method=\"Get\"", "statusCode=\"OK\"");
        double publishedBefore = sum("kvmesh_publish_seconds_count", "outcome=\"confirmed\"");
        assertThat(put("/api", "{\"key\":" + js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}").status())
                .isEqualTo(200);
        for (int i = 0; i < 4; i++) {
            assertThat(get("/api?key=" + q(key)).status()).isEqualTo(200);
        }
        assertThat(get("/api?key=" + q(key + "-missing")).status()).isEqualTo(404);

        assertThat(ADMIN_PORTS).isNotEmpty();
        for (int i = 0; i < ADMIN_PORTS.size(); i++) {
            int port = ADMIN_PORTS.get(i);
            HttpResponse<String> health = admin(port, "/healthz");
            assertThat(health.statusCode()).as("replica %d /healthz: %s", i + 1, health.body()).isEqualTo(200);
            HttpResponse<String> metrics = admin(port, "/metrics");
            assertThat(metrics.statusCode()).isEqualTo(200);
            assertThat(metrics.headers().firstValue("content-type").orElse("")).startsWith("text/plain; version=0.0.4");
            assertThat(metrics.body()).as("replica %d /metrics", i + 1).contains(
                    "instance=\"kv-service-" + (i + 1) + "\"",
                    "grpc_server_requests_received_messages_total{",
                    "grpc_server_processing_duration_seconds_bucket{",
                    "kvmesh_cache_reads_total{",
                    "kvmesh_cache_errors_total{",
                    "kvmesh_publish_seconds_bucket{",
                    "kvmesh_publish_batch_ops_count{",
                    "kvmesh_publish_messages_total{",
                    "kvmesh_request_id_checks_total{",
                    "kvmesh_sync_wait_seconds_bucket{",
                    "kvmesh_sync_waiting{",
                    "kvmesh_events_received_total{",
                    "kvmesh_events_lag_seconds_bucket{",
                    "kvmesh_watch_streams{",
                    "kvmesh_watch_buffered_bytes{",
                    "jvm_memory_used_bytes{");
        }
        // the requests above, counted by the replicas that served them (Envoy spreads them)
        assertThat(sum("grpc_server_processing_duration_seconds_count", "method=\"Get\"", "statusCode=\"OK\"") - getsBefore)
                .isGreaterThanOrEqualTo(4);
        assertThat(sum("grpc_server_processing_duration_seconds_count", "method=\"Get\"", "statusCode=\"NOT_FOUND\""))
                .isGreaterThanOrEqualTo(1);
        assertThat(sum("kvmesh_publish_seconds_count", "outcome=\"confirmed\"") - publishedBefore).isGreaterThanOrEqualTo(1);
        assertThat(sum("kvmesh_publish_messages_total", "outcome=\"confirmed\"")).isGreaterThanOrEqualTo(1);
        assertThat(sum("kvmesh_cache_reads_total", "source=\"redis\"") + sum("kvmesh_cache_reads_total", "source=\"postgres\""))
                .isGreaterThanOrEqualTo(5);
        assertThat(sum("kvmesh_sync_wait_seconds_count", "outcome=\"applied\"")).isGreaterThanOrEqualTo(1);
        // every replica receives every change event
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            for (int port : ADMIN_PORTS) {
                assertThat(admin(port, "/metrics").body())
                        .containsPattern("kvmesh_events_received_total\\{[^}]*outcome=\"applied\"[^}]*} [1-9]");
            }
        });
    }

    @Test
    void theMetricsPagesDataPath_isPrometheusOrASayingError_neverAnotherRoute() {
        Stack.Reply r = get("/prometheus/api/v1/query?query=up");
        // 200 when the stack runs Prometheus (KVMESH_PROMETHEUS=1), else nginx's 502 in the API's error scheme
        assertThat(r.status()).as(r.toString()).isIn(200, 502);
        if (r.status() == 502) {
            assertThat(r.json().get("code").getAsInt()).isEqualTo(14);
        }
        assertThat(get("/prometheus/api/v1/admin/tsdb/snapshot").status()).isEqualTo(404);
        assertThat(Stack.send("POST", "/prometheus/api/v1/query?query=up", "{}").status()).isEqualTo(405);
    }
}
