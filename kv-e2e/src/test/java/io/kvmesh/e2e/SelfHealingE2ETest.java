package io.kvmesh.e2e;

import org.junit.jupiter.api.Order;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code kill -9} of each kind of process of the stack, one at a time, and nobody acting afterwards: within 15 s the
 * API through nginx applies a SYNC write and reads it back, and {@code start.sh status} soon names every part healthy
 * again, the killed one with a new pid (its supervisor restarted it). Runs after every other class of this module.
 */
@Order(200)
class SelfHealingE2ETest {
    private static final Duration API_BACK_WITHIN = Duration.ofSeconds(15);
    private static final Duration HEALTHY_WITHIN = Duration.ofSeconds(90);

    @ParameterizedTest
    @ValueSource(strings = {"kv-service-1", "kv-consumer-1", "envoy", "nginx", "redis", "rabbitmq", "postgres"})
    void killedPart_comesBackByItself_andTheApiServesWritesAndReadsWithin15s(String part) throws Exception {
        assumeTrue(Stack.runDir().isPresent() && Stack.startScript().isPresent(),
                "KVMESH_E2E_RUN_DIR / KVMESH_E2E_START_SH not set: the stack is not ours to kill parts of");
        await().atMost(HEALTHY_WITHIN).pollInterval(Duration.ofSeconds(1)).until(SelfHealingE2ETest::stackHealthy);
        String prefix = Stack.uniqueKey("heal-" + part) + "/";
        assertThat(writeAndReadBack(prefix + "before")).as("the API before the kill").isTrue();

        long pid = pidOf(part);
        ProcessHandle victim = ProcessHandle.of(pid).orElseThrow(() -> new AssertionError(part + " (pid " + pid + ") is not running"));
        long t0 = System.nanoTime();
        assertThat(victim.destroyForcibly()).isTrue();
        victim.onExit().get(10, TimeUnit.SECONDS);

        AtomicInteger attempt = new AtomicInteger();
        await().atMost(API_BACK_WITHIN).pollInterval(Duration.ofMillis(250))
                .until(() -> writeAndReadBack(prefix + attempt.incrementAndGet()));
        long apiBack = (System.nanoTime() - t0) / 1_000_000;
        await().atMost(HEALTHY_WITHIN).pollInterval(Duration.ofSeconds(1)).until(SelfHealingE2ETest::stackHealthy);
        long healthy = (System.nanoTime() - t0) / 1_000_000;
        System.out.printf("[self-healing] kill -9 %s (pid %d): API back after %d ms, status healthy after %d ms%n",
                part, pid, apiBack, healthy);
        assertThat(pidOf(part)).as("%s restarted by its supervisor", part).isNotEqualTo(pid);
    }

    /** A SYNC write through nginx is applied, and a read returns it. */
    private static boolean writeAndReadBack(String key) {
        try {
            Stack.Reply put = Stack.put("/api", "{\"key\":" + Stack.js(key) + ",\"value\":\"v\",\"mode\":\"SYNC\"}");
            if (put.status() != 200 || !put.body().contains("\"applied\"")) {
                return false;
            }
            Stack.Reply got = Stack.get("/api?key=" + Stack.q(key));
            return got.status() == 200 && got.json().getAsJsonObject("data").get("value").getAsString().equals("v");
        } catch (AssertionError | RuntimeException e) {   // connection refused while nginx restarts
            return false;
        }
    }

    /** `start.sh status` exits 0: every part healthy by its own check, and /healthz answers 200. */
    private static boolean stackHealthy() throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(Stack.startScript().get().toString(), "status").redirectErrorStream(true);
        pb.environment().put("KVMESH_RUN_DIR", Stack.runDir().get().toString());
        pb.environment().put("KVMESH_MODE", "native");
        Process p = pb.start();
        p.getInputStream().readAllBytes();
        return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    /** The pid of the process a crash of PART means: the Java process, Envoy, nginx's master, each server itself. */
    private static long pidOf(String part) throws IOException {
        Path run = Stack.runDir().get();
        Path file = switch (part) {
            case "postgres" -> run.resolve("postgres/data/postmaster.pid");
            case "redis" -> run.resolve("redis/redis.pid");
            case "rabbitmq" -> run.resolve("rabbitmq/rabbit.pid");   // beam.smp
            default -> run.resolve("pids").resolve(part + ".pid");
        };
        return Long.parseLong(Files.readAllLines(file, StandardCharsets.UTF_8).get(0).trim());
    }
}
