package io.kvmesh.e2e;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/** The running stack under test: its addresses (from KVMESH_E2E_* variables) and small HTTP and gRPC helpers. */
final class Stack {
    private static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build();

    private Stack() {
    }

    private static String required(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            throw new IllegalStateException(name + " is not set: run the e2e tests with scripts/e2e.sh, or start the stack"
                    + " (./start.sh) and set KVMESH_E2E_HTTP=http://127.0.0.1:8088 KVMESH_E2E_GRPC=127.0.0.1:8080");
        }
        return v;
    }

    /** Base URL of nginx, e.g. http://127.0.0.1:8088. */
    static String http() {
        String v = required("KVMESH_E2E_HTTP");
        return v.endsWith("/") ? v.substring(0, v.length() - 1) : v;
    }

    /** host:port of Envoy's listener (native gRPC). */
    static String grpcTarget() {
        return required("KVMESH_E2E_GRPC");
    }

    /** The stack's run folder (pids/), when the tests may kill and restart parts of it. */
    static Optional<Path> runDir() {
        return Optional.ofNullable(System.getenv("KVMESH_E2E_RUN_DIR")).filter(s -> !s.isBlank()).map(Path::of);
    }

    /** start.sh of the stack under test (for `start.sh restart PART`). */
    static Optional<Path> startScript() {
        return Optional.ofNullable(System.getenv("KVMESH_E2E_START_SH")).filter(s -> !s.isBlank()).map(Path::of);
    }

    /**
     * The bearer token the suite sends (KVMESH_E2E_TOKEN: scripts/e2e.sh runs the stack with auth on and passes its
     * admin token), or empty when the stack under test has auth off.
     */
    static Optional<String> token() {
        return Optional.ofNullable(System.getenv("KVMESH_E2E_TOKEN")).map(String::trim).filter(s -> !s.isEmpty());
    }

    /** A channel to Envoy's listener whose every call carries the suite's token (if any). */
    static ManagedChannel channel() {
        ManagedChannelBuilder<?> b = ManagedChannelBuilder.forTarget(grpcTarget()).usePlaintext();
        token().ifPresent(t -> {
            Metadata md = new Metadata();
            md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + t);
            b.intercept(MetadataUtils.newAttachHeadersInterceptor(md));
        });
        return b.build();
    }

    /** A request to nginx carrying the suite's token (if any). */
    static HttpRequest.Builder request(String pathAndQuery) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(http() + pathAndQuery));
        token().ifPresent(t -> b.header("Authorization", "Bearer " + t));
        return b;
    }

    static void close(ManagedChannel channel) throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    /** A key no other test run uses. */
    static String uniqueKey(String prefix) {
        return "e2e-" + prefix + "-" + UUID.randomUUID();
    }

    /** One HTTP exchange: status, raw body, and the body parsed as JSON when it is JSON. */
    record Reply(int status, String body, String contentType) {
        JsonObject json() {
            JsonElement e = JsonParser.parseString(body);
            if (!e.isJsonObject()) {
                throw new AssertionError("not a JSON object: " + body);
            }
            return e.getAsJsonObject();
        }

        boolean isJson() {
            try {
                return JsonParser.parseString(body).isJsonObject();
            } catch (RuntimeException e) {
                return false;
            }
        }

        @Override
        public String toString() {
            return status + " " + body;
        }
    }

    static Reply send(String method, String pathAndQuery, String body) {
        HttpRequest.Builder b = request(pathAndQuery).timeout(Duration.ofSeconds(20));
        if (body != null) {
            b.header("Content-Type", "application/json");
        }
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        try {
            HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
            return new Reply(r.statusCode(), r.body(), r.headers().firstValue("content-type").orElse(""));
        } catch (IOException e) {
            throw new AssertionError(method + " " + pathAndQuery + " failed: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    static Reply get(String pathAndQuery) {
        return send("GET", pathAndQuery, null);
    }

    static Reply put(String path, String body) {
        return send("PUT", path, body);
    }

    static Reply delete(String pathAndQuery) {
        return send("DELETE", pathAndQuery, null);
    }

    static String q(String s) {
        return java.net.URLEncoder.encode(s, java.nio.charset.StandardCharsets.UTF_8);
    }

    /** JSON string literal. */
    static String js(String s) {
        return new com.google.gson.JsonPrimitive(s).toString();
    }

    static long pidOf(String part) throws IOException {
        Path dir = runDir().orElseThrow(() -> new IllegalStateException("KVMESH_E2E_RUN_DIR is not set"));
        return Long.parseLong(Files.readString(dir.resolve("pids").resolve(part + ".pid")).trim());
    }
}
