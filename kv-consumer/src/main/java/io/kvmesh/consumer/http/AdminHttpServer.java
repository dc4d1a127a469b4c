package io.kvmesh.consumer.http;

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

/**
 * The consumer's own HTTP endpoint for operators and supervisors (start.sh, the compose healthcheck): {@code GET
 * /healthz} answers 200 {@code {"status":"ok"}} while the health check passes, else 503 {@code
 * {"status":"unavailable","reason":…}}. Other operational endpoints (metrics) belong here too. The JDK's own HTTP
 * server is enough for a few requests a second and adds no dependency.
 */
public final class AdminHttpServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AdminHttpServer.class);

    private final HttpServer server;
    private final ExecutorService executor;

    private AdminHttpServer(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /** Binds {@code bind:port} (port 0 picks a free one) and starts serving; fails at once if the port is taken. */
    public static AdminHttpServer start(String bind, int port, HealthCheck health) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 16);
        // two threads: a check can wait on the database pool's connection timeout, a probe must not queue behind it
        ExecutorService executor = Executors.newFixedThreadPool(2,
                Thread.ofPlatform().name("kv-admin-http-", 0).daemon(true).factory());
        server.setExecutor(executor);
        server.createContext("/", exchange -> {
            try (exchange) {
                route(exchange, health);
            } catch (IOException | RuntimeException e) {
                log.debug("admin HTTP request failed", e);
            }
        });
        server.start();
        return new AdminHttpServer(server, executor);
    }

    private static void route(HttpExchange exchange, HealthCheck health) throws IOException {
        String method = exchange.getRequestMethod();
        if (!exchange.getRequestURI().getPath().equals("/healthz")) {
            respond(exchange, 404, "{\"code\":404,\"message\":\"not found\"}");
        } else if (!method.equals("GET") && !method.equals("HEAD")) {
            exchange.getResponseHeaders().set("Allow", "GET, HEAD");
            respond(exchange, 405, "{\"code\":405,\"message\":\"method not allowed\"}");
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
        byte[] body = (json + "\n").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
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
