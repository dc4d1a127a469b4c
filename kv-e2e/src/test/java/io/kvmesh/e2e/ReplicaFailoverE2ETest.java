package io.kvmesh.e2e;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * One kv-service replica is killed (SIGKILL, by its pid from the run folder) while a steady stream of writes and
 * reads goes through nginx and Envoy: every request is still answered and no acknowledged write is lost.
 * Runs after the others but before the self-healing test; it restarts the replica afterwards with {@code start.sh restart}.
 */
@Order(100)
class ReplicaFailoverE2ETest {
    private static final String VICTIM = "kv-service-1";

    @AfterAll
    static void restartVictim() throws Exception {
        if (Stack.runDir().isEmpty() || Stack.startScript().isEmpty()) {
            return;
        }
        ProcessBuilder pb = new ProcessBuilder(Stack.startScript().get().toString(), "restart", VICTIM)
                .redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.put("KVMESH_RUN_DIR", Stack.runDir().get().toString());
        env.put("KVMESH_MODE", "native");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("start.sh restart %s: %s", VICTIM, out).isZero();
    }

    @Test
    void killingAReplica_duringTraffic_losesNoRequestAndNoAcknowledgedWrite() throws Exception {
        assumeTrue(Stack.runDir().isPresent() && Stack.startScript().isPresent(),
                "KVMESH_E2E_RUN_DIR / KVMESH_E2E_START_SH not set: the stack is not ours to kill parts of");
        Path runDir = Stack.runDir().get();
        long pid = Stack.pidOf(VICTIM);
        ProcessHandle victim = ProcessHandle.of(pid).orElseThrow(() -> new AssertionError(VICTIM + " (pid " + pid + ") is not running"));
        String prefix = Stack.uniqueKey("failover") + "/";

        Map<String, String> acknowledged = new ConcurrentHashMap<>();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        AtomicInteger requests = new AtomicInteger();
        AtomicBoolean running = new AtomicBoolean(true);
        int workers = 4;
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        for (int w = 0; w < workers; w++) {
            int worker = w;
            pool.submit(() -> {
                for (int i = 0; running.get() && i < 5_000; i++) {
                    String key = prefix + worker + "-" + i;
                    Stack.Reply put = Stack.put("/api", "{\"key\":" + Stack.js(key) + ",\"value\":\"v" + i + "\"}");
                    requests.incrementAndGet();
                    if (put.status() == 200) {
                        acknowledged.put(key, "v" + i);
                    } else {
                        failures.add("PUT " + key + " -> " + put);
                    }
                    Stack.Reply got = Stack.get("/api?key=" + Stack.q(prefix + "absent"));
                    requests.incrementAndGet();
                    if (got.status() != 404) {
                        failures.add("GET -> " + got);
                    }
                }
                return null;
            });
        }
        try {
            await().atMost(Duration.ofSeconds(20)).until(() -> acknowledged.size() >= 50);
            int before = requests.get();
            assertThat(victim.destroyForcibly()).isTrue();
            victim.onExit().get(10, TimeUnit.SECONDS);
            // keep the stream going until Envoy has seen the replica fail and well after
            await().pollDelay(Duration.ofSeconds(5)).atMost(Duration.ofSeconds(30)).until(() -> requests.get() > before + 200);
        } finally {
            running.set(false);
            pool.shutdown();
            assertThat(pool.awaitTermination(60, TimeUnit.SECONDS)).isTrue();
        }
        assertThat(failures).as("requests not answered successfully while %s was killed (run folder %s)", VICTIM, runDir)
                .isEmpty();
        assertThat(acknowledged).hasSizeGreaterThan(100);

        // every acknowledged write is applied, through the surviving replica
        List<Map.Entry<String, String>> all = List.copyOf(acknowledged.entrySet());
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).untilAsserted(() -> {
            long missing = all.stream().filter(e -> {
                Stack.Reply r = Stack.get("/api?key=" + Stack.q(e.getKey()));
                return r.status() != 200 || !r.json().getAsJsonObject("data").get("value").getAsString().equals(e.getValue());
            }).count();
            assertThat(missing).as("acknowledged writes not (yet) readable, of %d", all.size()).isZero();
        });
    }
}
