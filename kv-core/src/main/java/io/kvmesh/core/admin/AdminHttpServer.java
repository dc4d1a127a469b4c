package io.kvmesh.core.admin;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * A process's own HTTP endpoint for operators, supervisors and Prometheus (start.sh, the compose healthcheck, a
 * scrape): {@code GET /healthz} answers 200 {@code {"status":"ok"}} while the health check passes, else 503 {@code
 * {"status":"unavailable","reason":…}}; {@code GET /metrics} answers the Prometheus text exposition of the process's
 * registry. The JDK's own HTTP server is enough for a few requests a second and adds no dependency.
 */
public final class AdminHttpServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AdminHttpServer.class);

    /** Prometheus text exposition format 0.0.4, what every Prometheus scrapes. */
    static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

    private final HttpServer server;
    private final ExecutorService executor;

    private AdminHttpServer(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /** Health only, no {@code /metrics} (404). */
    public static AdminHttpServer start(String bind, int port, HealthCheck health) throws IOException {
        return start(bind, port, health, null);
    }

    /**
     * Binds {@code bind:port} (port 0 picks a free one) and starts serving; fails at once if the port is taken.
     *
     * @param metrics the Prometheus text to answer {@code GET /metrics} with (a registry's {@code scrape}), or null
     */
    public static AdminHttpServer start(String bind, int port, HealthCheck health, Supplier<String> metrics)
            throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 16);
        // two threads: a check can wait on the database pool's connection timeout, a probe must not queue behind it
        ExecutorService executor = Executors.newFixedThreadPool(2,
                Thread.ofPlatform().name("kv-admin-http-", 0).daemon(true).factory());
        server.setExecutor(executor);
        server.createContext("/", exchange -> {
            try (exchange) {
                route(exchange, health, metrics);
            } catch (IOException | RuntimeException e) {
                log.debug("admin HTTP request failed", e);
            }
        });
        server.start();
        return new AdminHttpServer(server, executor);
    }

    private static void route(HttpExchange exchange, HealthCheck health, Supplier<String> metrics)
            throws IOException {
        String method = exchange.getRequestMethod();
        String path = exchange.getRequestURI().getPath();
        boolean isMetrics = metrics != null && path.equals("/metrics");
        if (!path.equals("/healthz") && !isMetrics) {
            respond(exchange, 404, "{\"code\":404,\"message\":\"not found\"}");
        } else if (!method.equals("GET") && !method.equals("HEAD")) {
            exchange.getResponseHeaders().set("Allow", "GET, HEAD");
            respond(exchange, 405, "{\"code\":405,\"message\":\"method not allowed\"}");
        } else if (isMetrics) {
            respond(exchange, 200, PROMETHEUS_TEXT, metrics.get());
        } else {
            Optional<String> problem;
            try {
                problem = health.problem();
            } catch (RuntimeException e) {
                problem = Optional.of("health check failed: " + e);
            }
            if (problem.isEmpty()) {
                respond(exchange, 200, "{\"status\":\"ok\"}");
            } else {
                respond(exchange, 503, "{\"status\":\"unavailable\",\"reason\":" + jsonString(problem.get()) + "}");
            }
        }
    }

    private static void respond(HttpExchange exchange, int status, String json) throws IOException {
        respond(exchange, status, "application/json", json + "\n");
    }

    private static void respond(HttpExchange exchange, int status, String contentType, String text)
            throws IOException {
        byte[] body = text.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", contentType);
        exchange.getResponseHeaders().set("Cache-Control", "no-store");
        boolean head = exchange.getRequestMethod().equals("HEAD");
        exchange.sendResponseHeaders(status, head ? -1 : body.length);
        if (!head) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
    }

    static String jsonString(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** The address actually bound (the real port when 0 was asked for). */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
