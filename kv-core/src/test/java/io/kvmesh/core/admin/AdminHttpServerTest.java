package io.kvmesh.core.admin;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

class AdminHttpServerTest {
    private final AtomicReference<Optional<String>> problem = new AtomicReference<>(Optional.empty());
    private final HttpClient client = HttpClient.newHttpClient();
    private AdminHttpServer server;

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private HttpResponse<String> call(String method, String path) throws IOException, InterruptedException {
        if (server == null) {
            server = AdminHttpServer.start("127.0.0.1", 0, problem::get);
        }
        URI uri = URI.create("http://127.0.0.1:" + server.address().getPort() + path);
        return client.send(HttpRequest.newBuilder(uri).method(method, HttpRequest.BodyPublishers.noBody()).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void healthz_answers200Ok_whenTheCheckPasses() throws Exception {
        HttpResponse<String> r = call("GET", "/healthz");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body().strip()).isEqualTo("{\"status\":\"ok\"}");
        assertThat(r.headers().firstValue("content-type")).contains("application/json");
    }

    @Test
    void healthz_answers503WithTheReason_whenTheCheckFails() throws Exception {
        problem.set(Optional.of("not consuming: \"broker\" down"));
        HttpResponse<String> r = call("GET", "/healthz");
        assertThat(r.statusCode()).isEqualTo(503);
        assertThat(r.body().strip()).isEqualTo("{\"status\":\"unavailable\",\"reason\":\"not consuming: \\\"broker\\\" down\"}");
    }

    @Test
    void healthz_answers503_whenTheCheckThrows() throws Exception {
        server = AdminHttpServer.start("127.0.0.1", 0, () -> {
            throw new IllegalStateException("boom");
        });
        HttpResponse<String> r = call("GET", "/healthz");
        assertThat(r.statusCode()).isEqualTo(503);
        assertThat(r.body()).contains("boom");
    }

    @Test
    void healthz_followsTheCheck_fromOneRequestToTheNext() throws Exception {
        assertThat(call("GET", "/healthz").statusCode()).isEqualTo(200);
        problem.set(Optional.of("starting"));
        assertThat(call("GET", "/healthz").statusCode()).isEqualTo(503);
        problem.set(Optional.empty());
        assertThat(call("HEAD", "/healthz").statusCode()).isEqualTo(200);
    }

    @Test
    void otherPathsAndMethods_answer404And405() throws Exception {
        assertThat(call("GET", "/nope").statusCode()).isEqualTo(404);
        HttpResponse<String> post = call("POST", "/healthz");
        assertThat(post.statusCode()).isEqualTo(405);
        assertThat(post.headers().firstValue("allow")).contains("GET, HEAD");
    }

    @Test
    void start_fails_whenThePortIsTaken() throws Exception {
        server = AdminHttpServer.start("127.0.0.1", 0, problem::get);
        int port = server.address().getPort();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> AdminHttpServer.start("127.0.0.1", port, problem::get))
                .isInstanceOf(IOException.class);
    }

    @Test
    void metrics_answersThePrometheusText_andIs404WithoutARegistry() throws Exception {
        HttpResponse<String> none = call("GET", "/metrics");
        assertThat(none.statusCode()).isEqualTo(404);
        server.close();
        var registry = io.kvmesh.core.metrics.Metrics.newRegistry("kv-test", "kv-test-1");
        registry.counter("kvmesh_test_things").increment(3);
        server = AdminHttpServer.start("127.0.0.1", 0, problem::get, registry::scrape);
        HttpResponse<String> r = call("GET", "/metrics");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type")).hasValue(AdminHttpServer.PROMETHEUS_TEXT);
        assertThat(r.body())
                .contains("kvmesh_test_things_total{application=\"kv-test\",instance=\"kv-test-1\"} 3.0")
                .contains("jvm_memory_used_bytes");
        assertThat(call("POST", "/metrics").statusCode()).isEqualTo(405);
    }
}
