package io.kvmesh.cli;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * kvctl against a live stack through Envoy's gRPC listener (KVMESH_E2E_GRPC), run with -Pe2e, e.g. by
 * {@code KVMESH_E2E_MODULES=kv-cli scripts/e2e.sh}. Drives the real command classes in this JVM, and the ./kvctl
 * wrapper once as a process.
 */
class KvctlE2ETest {
    private static String endpoint;
    private final String prefix = "kvctl-e2e-" + UUID.randomUUID() + "/";

    record Run(int code, String out, String err) {
    }

    @BeforeAll
    static void stack() {
        endpoint = System.getenv("KVMESH_E2E_GRPC");
        if (endpoint == null || endpoint.isBlank()) {
            throw new IllegalStateException("KVMESH_E2E_GRPC is not set: run KVMESH_E2E_MODULES=kv-cli scripts/e2e.sh,"
                    + " or start the stack and set KVMESH_E2E_GRPC=127.0.0.1:8080");
        }
    }

    private static Run kvctl(String... args) {
        Kvctl kvctl = new Kvctl().withTerminal(false);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = kvctl.commandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        String[] all = new String[args.length + 2];
        all[0] = "--endpoint";
        all[1] = endpoint;
        System.arraycopy(args, 0, all, 2, args.length);
        try {
            return new Run(cl.execute(all), out.toString(), err.toString());
        } finally {
            kvctl.close();
        }
    }

    private static String field(String out, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":\"([^\"]*)\"").matcher(out);
        assertThat(m.find()).as(name + " in " + out).isTrue();
        return m.group(1);
    }

    @Test
    void putGetLsDel_roundTrip_withExitCodes() {
        Run put = kvctl("put", "--sync", prefix + "a", "hello world");
        assertThat(put.code()).as(put.err()).isZero();
        assertThat(put.out()).containsPattern("status\\s+applied").containsPattern("(?m)^version\\s+1$");

        Run get = kvctl("get", prefix + "a");
        assertThat(get.code()).isZero();
        assertThat(get.out()).containsPattern("(?m)^value\\s+hello world$").containsPattern("(?m)^source\\s+(redis|postgres)$");

        kvctl("put", "--sync", prefix + "b", "two");
        Run ls = kvctl("ls", "--prefix", prefix, "--page-size", "1");
        assertThat(ls.out()).contains(prefix + "a").contains(prefix + "b").contains("2 entries under '" + prefix + "' (2 pages)");

        assertThat(kvctl("put", "--sync", "--expected-version", "0", prefix + "a", "x").code()).isEqualTo(ExitCodes.CONFLICT);
        assertThat(kvctl("del", "--sync", prefix + "a").code()).isZero();
        Run gone = kvctl("get", prefix + "a");
        assertThat(gone.code()).isEqualTo(ExitCodes.NOT_FOUND);
        assertThat(gone.err()).contains("NOT_FOUND");
        assertThat(kvctl("get", "").code()).isEqualTo(ExitCodes.USAGE);
    }

    @Test
    void op_reportsTheOutcomeOfAnAsyncWrite() {
        String id = field(kvctl("--json", "put", prefix + "op", "v").out(), "operationId");
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                assertThat(kvctl("op", id).out()).containsPattern("state\\s+APPLIED").containsPattern("kind\\s+PUT"));
        assertThat(kvctl("op", UUID.randomUUID().toString()).code()).isEqualTo(ExitCodes.NOT_FOUND);
    }

    @Test
    void watch_printsAnEventCausedByAnotherClient() throws Exception {
        CompletableFuture<Run> watch = CompletableFuture.supplyAsync(() -> kvctl("watch", "--prefix", prefix, "--count", "1"));
        // The watch may subscribe after the first write: keep writing until it has seen one.
        int[] n = {0};
        await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(300)).until(() -> {
            kvctl("put", prefix + "w", "event-" + n[0]++);
            return watch.isDone();
        });
        Run r = watch.get(5, TimeUnit.SECONDS);
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).containsPattern("PUT\\s+\\d+\\s+" + Pattern.quote(prefix + "w") + "\\s+event-\\d+");
    }

    @Test
    void load_tenThousandLines_writesThemAll(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("load.jsonl");
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 10_000; i++) {
            b.append("{\"key\":\"").append(prefix).append("load/").append(String.format("%05d", i))
                    .append("\",\"value\":\"value-").append(i).append("\"}\n");
        }
        Files.writeString(file, b, StandardCharsets.UTF_8);

        Run r = kvctl("load", file.toString());

        System.out.println(r.out());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).containsPattern("(?m)^lines\\s+10000$").containsPattern("(?m)^written\\s+10000$")
                .containsPattern("(?m)^failed\\s+0$");
        assertThat(r.err()).contains("100% 10000/10000");
        // ASYNC puts: applied shortly after; then every line is listed.
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofSeconds(1)).untilAsserted(() ->
                assertThat(kvctl("ls", "--prefix", prefix + "load/", "--page-size", "1000").out())
                        .contains("10000 entries under"));
        assertThat(kvctl("get", "--value", prefix + "load/09999").out().trim()).isEqualTo("value-9999");
    }

    @Test
    void wrapperScript_runsTheJar() throws Exception {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        Process p = new ProcessBuilder(root.resolve("kvctl").toString(), "--endpoint", endpoint, "--json",
                "put", "--sync", prefix + "wrapper", "via script")
                .redirectErrorStream(false).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).contains("\"status\":\"applied\"");

        Process missing = new ProcessBuilder(root.resolve("kvctl").toString(), "--endpoint", endpoint, "get", prefix + "none").start();
        assertThat(missing.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(missing.exitValue()).isEqualTo(ExitCodes.NOT_FOUND);
    }
}
