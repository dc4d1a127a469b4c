package io.kvmesh.cli;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WriteMode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** kvctl end to end inside one JVM: picocli parsing, output formats and exit codes against an in-process fake KeyValue. */
class KvctlTest {
    private final FakeKeyValue fake = new FakeKeyValue();
    private Server server;
    private String serverName;
    private final List<String> endpointsUsed = new ArrayList<>();
    private final List<String> authorizations = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** One kvctl invocation: exit code and what it printed. */
    record Run(int code, String out, String err) {
    }

    @BeforeEach
    void start() throws IOException {
        serverName = InProcessServerBuilder.generateName();
        server = InProcessServerBuilder.forName(serverName).directExecutor()
                .addService(io.grpc.ServerInterceptors.intercept(fake, new io.grpc.ServerInterceptor() {
                    @Override
                    public <Q, R> io.grpc.ServerCall.Listener<Q> interceptCall(io.grpc.ServerCall<Q, R> call,
                            io.grpc.Metadata headers, io.grpc.ServerCallHandler<Q, R> next) {
                        authorizations.add(String.valueOf(headers.get(io.grpc.Metadata.Key.of("authorization",
                                io.grpc.Metadata.ASCII_STRING_MARSHALLER))));
                        return next.startCall(call, headers);
                    }
                })).build().start();
    }

    @AfterEach
    void stop() throws InterruptedException {
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private Run kvctlWithInput(String stdin, String... args) {
        Kvctl kvctl = new Kvctl(endpoint -> {
            endpointsUsed.add(endpoint);
            ManagedChannel ch = InProcessChannelBuilder.forName(endpoint.equals("down:1") ? "nobody-" + serverName : serverName)
                    .directExecutor().build();
            return ch;
        }).withInput(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8))).withTerminal(false)
                .withSettings(environmentWithoutToken(), null);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = kvctl.commandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code;
        try {
            code = cl.execute(args);
        } finally {
            kvctl.close();
        }
        return new Run(code, out.toString(), err.toString());
    }

    /** The real environment minus a token (scripts/e2e.sh exports KVMESH_TOKEN for the e2e suite): no test sends one unasked. */
    private static Map<String, String> environmentWithoutToken() {
        Map<String, String> env = new java.util.HashMap<>(System.getenv());
        env.remove("KVMESH_TOKEN");
        env.remove("KVMESH_TOKEN_FILE");
        return env;
    }

    private Run kvctl(String... args) {
        return kvctlWithInput("", args);
    }

    @Test
    void put_parsesEveryOption_intoOneRequest() {
        Run r = kvctl("put", "--sync", "--ttl", "1m30s", "--expect-version", "0", "--request-id", "r-1", "k1", "v1");

        assertThat(r.code()).as(r.toString()).isZero();
        PutRequest sent = fake.puts.getFirst();
        assertThat(sent.getKey()).isEqualTo("k1");
        assertThat(sent.getValue()).isEqualTo("v1");
        assertThat(sent.getMode()).isEqualTo(WriteMode.SYNC);
        assertThat(sent.getTtl().getSeconds()).isEqualTo(90);
        assertThat(sent.hasExpectedVersion()).isTrue();
        assertThat(sent.getExpectedVersion()).isZero();
        assertThat(sent.getRequestId()).isEqualTo("r-1");
        assertThat(r.out()).containsPattern("status\\s+applied").containsPattern("version\\s+1");
    }

    @Test
    void expectedVersion_isTheFlagsName_andExpectVersionItsAlias_onPutAndDel() {
        assertThat(kvctl("put", "--expected-version", "0", "k", "v").code()).isZero();
        assertThat(fake.puts.getFirst().hasExpectedVersion()).isTrue();
        assertThat(kvctl("put", "--expect-version", "1", "k", "w").code()).isZero();
        assertThat(fake.puts.get(1).getExpectedVersion()).isEqualTo(1);
        assertThat(kvctl("del", "--expected-version", "2", "k").code()).isZero();
        Run bad = kvctl("put", "--expected-version", "-1", "k", "v");
        assertThat(bad.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(bad.err()).contains("--expected-version must be >= 0");
    }

    /** kvctl in a clone, without --endpoint, with {@code env} as its environment. */
    private String defaultEndpoint(Map<String, String> env, Path clone) {
        Kvctl kvctl = new Kvctl(endpoint -> {
            endpointsUsed.add(endpoint);
            return InProcessChannelBuilder.forName(serverName).directExecutor().build();
        }).withSettings(env, clone).withTerminal(false);
        var cl = kvctl.commandLine();
        cl.setOut(new PrintWriter(new StringWriter(), true));
        cl.setErr(new PrintWriter(new StringWriter(), true));
        try {
            assertThat(cl.execute("put", "k", "v")).isZero();
        } finally {
            kvctl.close();
        }
        return endpointsUsed.getLast();
    }

    @Test
    void defaultEndpoint_isTheLocalStacksEnvoy_fromItsSettingsAndDotEnv(@TempDir Path clone) throws IOException {
        assertThat(defaultEndpoint(Map.of(), clone)).isEqualTo("127.0.0.1:8080");
        // ./.env, as start.sh reads it
        Files.writeString(clone.resolve(".env"), "# settings\nexport KVMESH_ENVOY_PORT=\"18080\"\nKVMESH_HTTP_PORT=18088\n");
        assertThat(defaultEndpoint(Map.of(), clone)).isEqualTo("127.0.0.1:18080");
        assertThat(defaultEndpoint(Map.of("KVMESH_ENVOY_PORT", "19090"), clone)).isEqualTo("127.0.0.1:19090");
        // the stack started from this clone: its run folder's stack.env wins (the port it really listens on)
        Files.createDirectories(clone.resolve(".run"));
        Files.writeString(clone.resolve(".run/stack.env"), "# written by start.sh\nKVMESH_HTTP_PORT=28088\nKVMESH_ENVOY_PORT=28080\n");
        assertThat(defaultEndpoint(Map.of(), clone)).isEqualTo("127.0.0.1:28080");
        Path elsewhere = Files.createDirectories(clone.resolve("other-run"));
        Files.writeString(elsewhere.resolve("stack.env"), "KVMESH_ENVOY_PORT=38080\n");
        assertThat(defaultEndpoint(Map.of("KVMESH_RUN_DIR", elsewhere.toString()), clone)).isEqualTo("127.0.0.1:38080");
        // KVMESH_ENDPOINT and --endpoint still decide
        assertThat(defaultEndpoint(Map.of("KVMESH_ENDPOINT", "db.example:9000"), clone)).isEqualTo("db.example:9000");
    }

    @Test
    void put_isAsyncAndUnconditional_byDefault() {
        Run r = kvctl("put", "k", "v");

        assertThat(r.code()).isZero();
        PutRequest sent = fake.puts.getFirst();
        assertThat(sent.getMode()).isEqualTo(WriteMode.ASYNC);
        // every write carries a request id, so a retry after a lost answer applies it once
        assertThat(sent.getRequestId()).startsWith("kvctl-");
        kvctl("put", "k", "v");
        assertThat(fake.puts.get(1).getRequestId()).startsWith("kvctl-").isNotEqualTo(sent.getRequestId());
        assertThat(sent.hasExpectedVersion()).isFalse();
        assertThat(sent.hasTtl()).isFalse();
        assertThat(r.out()).containsPattern("status\\s+queued").contains("kvctl op ");
    }

    @Test
    void put_readsValueFromStdin_whenValueIsDash() {
        Run r = kvctlWithInput("line one\nline two", "put", "k", "-");

        assertThat(r.code()).isZero();
        assertThat(fake.puts.getFirst().getValue()).isEqualTo("line one\nline two");
    }

    @Test
    void globalOptions_workBeforeAndAfterTheSubcommand() {
        kvctl("--endpoint", "a:1", "put", "k", "v");
        Run r = kvctl("get", "k", "--endpoint", "b:2", "--json");

        assertThat(endpointsUsed).containsExactly("a:1", "b:2");
        assertThat(r.out().trim()).startsWith("{\"data\":{\"key\":\"k\",\"value\":\"v\",\"version\":\"1\"");
    }

    @Test
    void get_printsFieldTable_withVersionSourceAndTimes() {
        kvctl("put", "--ttl", "1h", "k", "hello");
        Run r = kvctl("get", "k");

        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("(?m)^key\\s+k$").containsPattern("(?m)^value\\s+hello$")
                .containsPattern("(?m)^version\\s+1$").containsPattern("(?m)^source\\s+redis$")
                .containsPattern("(?m)^updated\\s+\\d{4}-\\d\\d-\\d\\dT").containsPattern("(?m)^expires\\s+\\d{4}-");
    }

    @Test
    void get_valueOption_printsTheRawValueOnly() {
        kvctl("put", "k", "a\tb");
        assertThat(kvctl("get", "--value", "k").out()).isEqualTo("a\tb" + System.lineSeparator());
    }

    @Test
    void get_exitsOne_andSaysSoOnStderr_whenKeyMissing() {
        Run r = kvctl("get", "missing");

        assertThat(r.code()).isEqualTo(ExitCodes.NOT_FOUND);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).contains("NOT_FOUND").contains("key not found: missing");
    }

    @Test
    void errors_areJson_withJsonOption() {
        Run r = kvctl("--json", "get", "missing");

        assertThat(r.err().trim()).isEqualTo("{\"code\":\"NOT_FOUND\",\"message\":\"key not found: missing\"}");
    }

    @Test
    void exitCodes_followTheDocumentedTable() {
        assertThat(kvctl("nosuchcommand").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("put", "only-a-key").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("put", "--ttl", "soon", "k", "v").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("put", "--expect-version", "-1", "k", "v").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("get", "").code()).isEqualTo(ExitCodes.USAGE);            // INVALID_ARGUMENT from the server
        assertThat(kvctl("get", "fail-unavailable").code()).isEqualTo(ExitCodes.UNAVAILABLE);
        assertThat(kvctl("--endpoint", "down:1", "get", "k").code()).isEqualTo(ExitCodes.UNAVAILABLE);
        assertThat(kvctl("get", "fail-internal").code()).isEqualTo(ExitCodes.OTHER);
        kvctl("put", "k", "v");
        assertThat(kvctl("put", "--sync", "--expect-version", "7", "k", "w").code()).isEqualTo(ExitCodes.CONFLICT);
        assertThat(kvctl(new String[0]).code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("--help").code()).isZero();
    }

    @Test
    void del_removesTheKey() {
        kvctl("put", "k", "v");
        Run r = kvctl("del", "--sync", "k");

        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("status\\s+applied").containsPattern("version\\s+2");
        assertThat(kvctl("get", "k").code()).isEqualTo(ExitCodes.NOT_FOUND);
    }

    @Test
    void ls_pagesThrough_untilTheLimit() {
        for (int i = 0; i < 7; i++) {
            kvctl("put", "p/" + i, "value " + i);
        }
        kvctl("put", "other", "x");

        Run all = kvctl("ls", "--prefix", "p/", "--page-size", "3");
        assertThat(all.code()).isZero();
        assertThat(all.out().lines().filter(l -> l.startsWith("p/")).toList()).hasSize(7);
        assertThat(all.out()).contains("7 entries under 'p/' (3 pages)").doesNotContain("other");
        assertThat(fake.lists).hasSize(3);

        Run limited = kvctl("--json", "ls", "-p", "p/", "--page-size", "3", "--limit", "4");
        assertThat(limited.out().lines().toList()).hasSize(4).allMatch(l -> l.startsWith("{\"key\":\"p/"));
    }

    @Test
    void ls_table_cutsLongValues_andEscapesNewlines() {
        kvctl("put", "k", "a\nb" + "x".repeat(100));
        String row = kvctl("ls").out().lines().filter(l -> l.startsWith("k ")).findFirst().orElseThrow();

        assertThat(row).contains("a\\nbxxx").endsWith("…");
        assertThat(row.substring(row.indexOf("a\\n"))).hasSize(Output.TABLE_VALUE_WIDTH);
    }

    @Test
    void watch_printsLiveEvents_andStopsAfterCount() throws Exception {
        CompletableFuture<Run> watch = CompletableFuture.supplyAsync(() -> kvctl("watch", "--prefix", "w/", "--count", "2"));
        await().atMost(Duration.ofSeconds(5)).until(() -> !fake.watchers.isEmpty());
        kvctl("put", "other", "ignored");
        kvctl("put", "w/a", "one");
        kvctl("del", "w/a");

        Run r = watch.get(5, TimeUnit.SECONDS);
        assertThat(r.code()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines.getFirst()).startsWith("TIME").contains("TYPE").contains("KEY");
        assertThat(lines.get(1)).containsPattern("PUT\\s+1\\s+w/a\\s+one");
        assertThat(lines.get(2)).containsPattern("DELETE\\s+2\\s+w/a$");
        assertThat(r.out()).doesNotContain("other");
    }

    @Test
    void watch_replaysFromStartVersion_asJson() throws Exception {
        kvctl("put", "w/a", "one");
        Run r = CompletableFuture.supplyAsync(() -> kvctl("--json", "watch", "-p", "w/", "--start-version", "1", "-c", "1"))
                .get(5, TimeUnit.SECONDS);

        assertThat(r.out().trim()).startsWith("{\"type\":\"PUT\",\"key\":\"w/a\",\"value\":\"one\",\"version\":\"1\"");
    }

    @Test
    void op_showsAppliedAndRejectedOperations() {
        String out = kvctl("--json", "put", "k", "v").out();
        String id = out.replaceAll(".*\"operationId\":\"([^\"]+)\".*\\s*", "$1");
        Run applied = kvctl("op", id);
        assertThat(applied.out()).containsPattern("state\\s+APPLIED").containsPattern("kind\\s+PUT").containsPattern("version\\s+1");

        String rejectedId = kvctl("--json", "put", "--expect-version", "9", "k", "w").out()
                .replaceAll(".*\"operationId\":\"([^\"]+)\".*\\s*", "$1");
        assertThat(kvctl("op", rejectedId).out()).containsPattern("state\\s+REJECTED").containsPattern("reason\\s+version conflict");
        assertThat(kvctl("op", "no-such-op").code()).isEqualTo(ExitCodes.NOT_FOUND);
    }

    @Test
    void load_writesEveryLine_andPrintsSummaryAndProgress(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("data.jsonl");
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 500; i++) {
            b.append("{\"key\":\"load/").append(i).append("\",\"value\":\"v").append(i).append("\"}\n");
        }
        Files.writeString(file, b + "\n");   // a blank line is skipped

        Run r = kvctl("load", "--concurrency", "8", file.toString());

        assertThat(r.code()).as(r.err()).isZero();
        assertThat(fake.entries).hasSize(500);
        assertThat(r.out()).containsPattern("(?m)^lines\\s+500$").containsPattern("(?m)^written\\s+500$")
                .containsPattern("(?m)^failed\\s+0$").containsPattern("(?m)^elapsed\\s+\\d+\\.\\d\\ds$")
                .containsPattern("(?m)^rate\\s+\\d+ puts/s$");
        assertThat(r.err()).contains("[##############################] 100% 500/500");
        assertThat(fake.putManyCalls.get()).as("500 lines in PutMany calls of 250").isEqualTo(2);
    }

    @Test
    void load_aMalformedPutInABatch_failsOnlyItsLine_andTheOthersAreSentAgain() {
        String input = """
                {"key":"a","value":"1"}
                {"key":"invalid-key","value":"x"}
                {"key":"b","value":"2"}
                """;
        Run r = kvctlWithInput(input, "--json", "load", "--no-progress", "-");

        assertThat(r.out().trim()).startsWith("{\"lines\":3,\"written\":2,\"failed\":1,");
        assertThat(r.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("line 2 (key invalid-key): INVALID_ARGUMENT: key is not allowed");
        assertThat(fake.entries).containsOnlyKeys("a", "b");
        assertThat(fake.putManyCalls.get()).isEqualTo(2);
    }

    @Test
    void load_batchOfOne_sendsPuts_andRefusesABatchOutOfRange() {
        Run r = kvctlWithInput("{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n",
                "load", "--batch", "1", "--no-progress", "-");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(fake.putManyCalls.get()).isZero();
        assertThat(fake.puts).extracting(PutRequest::getKey).containsExactlyInAnyOrder("a", "b");
        assertThat(fake.puts).allSatisfy(p -> assertThat(p.getRequestId()).startsWith("kvctl-load-"));
        assertThat(kvctl("load", "--batch", "1001", "-").code()).isEqualTo(ExitCodes.USAGE);
    }

    @Test
    void load_countsBadLinesAndFailedPuts_andExitsWithTheFirstFailure() {
        String input = """
                {"key":"a","value":"1"}
                not json
                {"key":"","value":"x"}
                {"key":"fail-unavailable-1","value":"x"}
                {"key":"b","value":2}
                """;
        Run r = kvctlWithInput(input, "--json", "load", "--no-progress", "-");

        assertThat(r.out().trim()).startsWith("{\"lines\":5,\"written\":2,\"failed\":3,");
        assertThat(r.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("line 2: not JSON").contains("line 3: \"key\" must be a non-empty string")
                .contains("line 4 (key fail-unavailable-1): UNAVAILABLE");
        assertThat(fake.entries.get("b").getValue()).isEqualTo("2");
    }

    @Test
    void load_reportsAMissingFile_asUsageError() {
        Run r = kvctl("load", "/no/such/file.jsonl");
        assertThat(r.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("no such file");
    }

    @Test
    void durations_parseHumanAndIsoForms() {
        assertThat(Durations.parse("30s")).isEqualTo(Duration.ofSeconds(30));
        assertThat(Durations.parse("1h30m")).isEqualTo(Duration.ofMinutes(90));
        assertThat(Durations.parse("250ms")).isEqualTo(Duration.ofMillis(250));
        assertThat(Durations.parse("2d")).isEqualTo(Duration.ofDays(2));
        assertThat(Durations.parse("PT5S")).isEqualTo(Duration.ofSeconds(5));
        assertThatThrownBy(() -> Durations.parse("5 minutes")).hasMessageContaining("not a duration");
        assertThat(Durations.format(Duration.ofMinutes(90))).isEqualTo("1h30m");
    }

    @Test
    void progressLine_showsBarPercentCountAndRate() {
        assertThat(Progress.line(50, 200, 100)).isEqualTo("[########......................]  25% 50/200  100/s eta 2s");
        assertThat(Progress.line(7, -1, 3.4)).isEqualTo("7 lines  3/s");
    }

    @Test
    void token_keygenThenMint_makesATokenTheServiceAccepts_withTheGrantsAsked(@TempDir Path keys) throws Exception {
        Run keygen = kvctl("token", "keygen", "--dir", keys.toString());
        assertThat(keygen.code()).as(keygen.err()).isZero();
        assertThat(keygen.out()).contains(io.kvmesh.auth.Tokens.PUBLIC_KEYS_FILE);
        Run mint = kvctl("token", "mint", "--key", keys.resolve(io.kvmesh.auth.Tokens.SIGNING_KEY_FILE).toString(),
                "--prefix", "app1/", "--prefix", "shared/", "--permissions", "rw", "--ttl", "1h", "--subject", "app1");
        assertThat(mint.code()).as(mint.err()).isZero();
        var principal = new io.kvmesh.auth.TokenVerifier(io.kvmesh.auth.Tokens.readPublicKeys(
                keys.resolve(io.kvmesh.auth.Tokens.PUBLIC_KEYS_FILE)), java.time.Clock.systemUTC())
                .verify(mint.out().trim());
        assertThat(principal.subject()).isEqualTo("app1");
        assertThat(principal.allowsKey(io.kvmesh.auth.Permission.WRITE, "shared/x")).isTrue();
        assertThat(principal.allowsKey(io.kvmesh.auth.Permission.WATCH, "app1/x")).isFalse();
        assertThat(kvctl("token", "mint", "--key", keys.resolve(io.kvmesh.auth.Tokens.SIGNING_KEY_FILE).toString(),
                "--prefix", "a/", "--permissions", "admin").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(kvctl("token", "keygen", "--dir", keys.toString()).code()).isNotZero();
    }

    @Test
    void token_isSentAsABearerAuthorizationHeader_onEveryCall_andNothingWithoutOne() {
        fake.entries.put("k", io.kvmesh.api.v1.Entry.newBuilder().setKey("k").setValue("v").setVersion(1).build());
        assertThat(kvctl("--token", "abc.def.ghi", "get", "k").code()).isZero();
        assertThat(kvctl("get", "k").code()).isZero();
        assertThat(authorizations).containsExactly("Bearer abc.def.ghi", "null");
        assertThat(ExitCodes.of(io.grpc.Status.Code.PERMISSION_DENIED)).isEqualTo(ExitCodes.NOT_ALLOWED);
        assertThat(ExitCodes.of(io.grpc.Status.Code.UNAUTHENTICATED)).isEqualTo(ExitCodes.NOT_ALLOWED);
    }
}
