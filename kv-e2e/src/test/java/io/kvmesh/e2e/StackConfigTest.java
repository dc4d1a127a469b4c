package io.kvmesh.e2e;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Static checks of the container stack (no Docker engine needed): docker-compose.yml parses and has the topology,
 * every file it and the Dockerfile refer to exists, ports and variables agree with the config templates, and the
 * templates render (with scripts/render-config.sh) to valid configuration.
 */
@SuppressWarnings("unchecked")
class StackConfigTest {
    private static final Pattern PLACEHOLDER = Pattern.compile("\\$\\{(KVMESH_[A-Z0-9_]+)}");
    private static Path root;
    private static Map<String, Object> services;
    private static String dockerfile;

    @BeforeAll
    static void load() throws IOException {
        root = Path.of("").toAbsolutePath().getParent();
        Map<String, Object> compose = new Yaml().load(Files.readString(root.resolve("docker-compose.yml")));
        services = (Map<String, Object>) compose.get("services");
        dockerfile = Files.readString(root.resolve("docker/Dockerfile"));
    }

    private static Map<String, Object> service(String name) {
        return (Map<String, Object>) services.get(name);
    }

    private static Map<String, String> env(String name) {
        Map<String, String> out = new HashMap<>();
        Object e = service(name).get("environment");
        if (e instanceof Map<?, ?> m) {
            m.forEach((k, v) -> out.put(String.valueOf(k), String.valueOf(v)));
        }
        return out;
    }

    /** ENV variables a Dockerfile stage sets. */
    private static Map<String, String> dockerfileEnv(String target) {
        String stage = dockerfile.substring(dockerfile.indexOf(" AS " + target + "\n"));
        int next = stage.indexOf("\nFROM ");
        stage = next < 0 ? stage : stage.substring(0, next);
        Map<String, String> out = new HashMap<>();
        Matcher m = Pattern.compile("(KVMESH_[A-Z0-9_]+)=(\\S+)").matcher(stage.replace("\\\n", " "));
        while (m.find()) {
            out.put(m.group(1), m.group(2));
        }
        return out;
    }

    private static Set<String> placeholders(String file) throws IOException {
        Set<String> out = new TreeSet<>();
        Matcher m = PLACEHOLDER.matcher(Files.readString(root.resolve(file)));
        while (m.find()) {
            out.add(m.group(1));
        }
        return out;
    }

    @Test
    void compose_hasTheWholeTopology() {
        assertThat(services).containsOnlyKeys("postgres", "redis", "rabbitmq", "kv-auth-keys", "kv-service", "kv-consumer",
                "envoy", "nginx");
        assertThat(((Map<String, Object>) service("kv-service").get("deploy")).get("replicas")).isEqualTo(2);
        assertThat(((Map<String, Object>) service("kv-consumer").get("deploy")).get("replicas")).isEqualTo(2);
        assertThat((String) service("envoy").get("image")).isNotBlank();
    }

    @Test
    void compose_dependenciesExist_andHealthyConditionsHaveHealthchecks() {
        services.forEach((name, def) -> {
            Object deps = ((Map<String, Object>) def).get("depends_on");
            if (deps instanceof Map<?, ?> m) {
                m.forEach((dep, cond) -> {
                    assertThat(services).as("%s depends on %s", name, dep).containsKey((String) dep);
                    if (String.valueOf(cond).contains("service_healthy")) {
                        assertThat(service((String) dep)).as("%s has a healthcheck", dep).containsKey("healthcheck");
                    }
                });
            }
        });
    }

    @Test
    void compose_referencedFilesAndBuildTargetsExist() {
        services.forEach((name, def) -> {
            Map<String, Object> s = (Map<String, Object>) def;
            if (s.get("build") instanceof Map<?, ?> b) {
                assertThat(root.resolve(String.valueOf(b.get("dockerfile")))).exists();
                assertThat(dockerfile).as("Dockerfile stage for %s", name).contains(" AS " + b.get("target") + "\n");
            }
            if (s.get("volumes") instanceof List<?> vols) {
                for (Object v : vols) {
                    String src = String.valueOf(v).split(":")[0];
                    if (src.startsWith("./")) {
                        assertThat(root.resolve(src)).as("volume source of %s", name).exists();
                    }
                }
            }
        });
        Matcher copy = Pattern.compile("(?m)^COPY (?!--from)(\\S+) ").matcher(dockerfile);
        while (copy.find()) {
            assertThat(root.resolve(copy.group(1))).as("COPY source").exists();
        }
    }

    @Test
    void compose_portsAndVariables_agreeWithTheTemplates() throws IOException {
        Map<String, String> envoy = new HashMap<>(dockerfileEnv("envoy"));
        envoy.putAll(env("envoy"));
        assertThat(envoy).containsKeys(placeholders("envoy/envoy.yaml").toArray(String[]::new));
        assertThat(env("nginx")).containsKeys(placeholders("nginx/nginx.conf").toArray(String[]::new));

        String servicePort = env("kv-service").get("KVMESH_GRPC_PORT");
        assertThat(envoy.get("KVMESH_ENVOY_UPSTREAMS")).isEqualTo("kv-service:" + servicePort);
        assertThat(envoy.get("KVMESH_ENVOY_DNS")).isEqualTo("STRICT_DNS");
        assertThat(env("nginx").get("KVMESH_ENVOY_UPSTREAM")).isEqualTo("envoy:" + envoy.get("KVMESH_ENVOY_PORT"));
        assertThat((List<String>) service("nginx").get("ports")).singleElement().asString()
                .endsWith(":" + env("nginx").get("KVMESH_HTTP_PORT"));
        assertThat((List<String>) service("envoy").get("ports")).singleElement().asString()
                .startsWith("127.0.0.1:").endsWith(":" + envoy.get("KVMESH_ENVOY_PORT"));
        assertThat(envoy.get("KVMESH_ENVOY_ADMIN_PORT")).isNotEqualTo(envoy.get("KVMESH_ENVOY_PORT"));
    }

    private static String render(String template, Map<String, String> vars) throws Exception {
        Path out = Files.createTempFile("kvmesh-render", ".out");
        ProcessBuilder pb = new ProcessBuilder("sh", root.resolve("scripts/render-config.sh").toString(),
                root.resolve(template).toString(), out.toString()).redirectErrorStream(true);
        pb.environment().putAll(vars);
        Process p = pb.start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(log).isZero();
        String text = Files.readString(out);
        Files.delete(out);
        assertThat(PLACEHOLDER.matcher(text).find()).as("unfilled placeholder in %s", template).isFalse();
        return text;
    }

    @Test
    void envoyTemplate_rendersToYamlWithAllReplicasAsEndpoints() throws Exception {
        Map<String, String> vars = new HashMap<>(dockerfileEnv("envoy"));
        vars.put("KVMESH_ENVOY_DNS", "STATIC");
        vars.put("KVMESH_ENVOY_UPSTREAMS", "127.0.0.1:9091,127.0.0.1:9092,127.0.0.1:9093");
        Map<String, Object> cfg = new Yaml().load(render("envoy/envoy.yaml", vars));
        List<Map<String, Object>> clusters = (List<Map<String, Object>>) ((Map<String, Object>) cfg.get("static_resources")).get("clusters");
        Map<String, Object> cluster = clusters.get(0);
        assertThat(cluster.get("name")).isEqualTo("kv_service");
        List<Map<String, Object>> groups = (List<Map<String, Object>>) ((Map<String, Object>) cluster.get("load_assignment")).get("endpoints");
        assertThat((List<?>) groups.get(0).get("lb_endpoints")).hasSize(3);
        assertThat(cluster).containsKeys("health_checks", "outlier_detection", "circuit_breakers", "typed_extension_protocol_options");
        String admin = String.valueOf(((Map<String, Object>) ((Map<String, Object>) cfg.get("admin")).get("address")).get("socket_address"));
        assertThat(admin).contains("127.0.0.1");
    }

    @Test
    void compose_everyServiceRestartsByItself_andHasAHealthcheck() {
        services.forEach((name, def) -> {
            Map<String, Object> s = (Map<String, Object>) def;
            if (ONE_SHOT.contains(name)) {
                assertThat(String.valueOf(s.get("restart"))).as("%s runs once", name).isEqualTo("no");
                return;
            }
            assertThat(String.valueOf(s.get("restart"))).as("restart policy of %s", name)
                    .matches("unless-stopped|always|on-failure(:\\d+)?");
            assertThat(s).as("%s has a healthcheck", name).containsKey("healthcheck");
        });
    }

    /** Services that run once and exit (others wait for them with service_completed_successfully). */
    private static final java.util.Set<String> ONE_SHOT = java.util.Set.of("kv-auth-keys");

    @Test
    void compose_asksForTokens_andOnlyTheKeyMakerSeesTheSigningKey() {
        Map<String, Object> replica = service("kv-service");
        Map<String, Object> env = (Map<String, Object>) replica.get("environment");
        assertThat(String.valueOf(env.get("KVMESH_AUTH"))).isEqualTo("${KVMESH_AUTH:-on}");
        assertThat(String.valueOf(env.get("KVMESH_AUTH_JWKS_FILE"))).isEqualTo("/public/auth-jwks.json");
        assertThat((List<Object>) replica.get("volumes")).containsExactly("authpublic:/public:ro");
        assertThat(String.valueOf(((Map<String, Object>) replica.get("depends_on")).get("kv-auth-keys")))
                .contains("service_completed_successfully");
        services.forEach((name, def) -> {
            Object volumes = ((Map<String, Object>) def).get("volumes");
            if (volumes != null && !name.equals("kv-auth-keys")) {
                assertThat(String.valueOf(volumes)).as("%s mounts the signing key", name).doesNotContain("authkeys");
            }
        });
    }

    /** The consumer's health comes from its own endpoint in both modes, on the port its variable names. */
    @Test
    void consumerHealth_isItsOwnEndpoint_inComposeAndNativeMode() throws IOException {
        String port = env("kv-consumer").get("KVMESH_CONSUMER_HTTP_PORT");
        assertThat(port).as("KVMESH_CONSUMER_HTTP_PORT of kv-consumer").matches("\\d+");
        String check = String.valueOf(((Map<String, Object>) service("kv-consumer").get("healthcheck")).get("test"));
        assertThat(check).contains("127.0.0.1/" + port, "GET /healthz", " 200 ");
        assertThat(Files.readString(root.resolve(".env.example")))
                .contains("KVMESH_CONSUMER_HTTP_PORT=" + port, "KVMESH_CONSUMER_HTTP_BIND=127.0.0.1");
        assertThat(nativeMode()).contains("KVMESH_CONSUMER_HTTP_PORT", "/healthz").doesNotContain("connected to the broker");
    }

    /** An OutOfMemoryError must end the JVM, so the supervisor (native) or the restart policy (compose) replaces it. */
    @Test
    void javaProcesses_exitOnOutOfMemoryError_inComposeAndNativeMode() throws IOException {
        String javaBase = dockerfile.substring(dockerfile.indexOf(" AS java-base\n"));
        javaBase = javaBase.substring(0, javaBase.indexOf("\nFROM "));
        assertThat(javaBase).contains("-XX:+ExitOnOutOfMemoryError");
        assertThat(nativeMode()).contains("-XX:+ExitOnOutOfMemoryError");
    }

    /** An idle Watch lives as long as its client wants: no idle or route timeout cuts it at Envoy or nginx. */
    @Test
    void watch_isNotCutForBeingIdle_byEnvoyOrNginx() throws Exception {
        Map<String, String> vars = new HashMap<>(dockerfileEnv("envoy"));
        vars.putAll(env("envoy"));
        vars.put("KVMESH_ENVOY_DNS", "STATIC");
        vars.put("KVMESH_ENVOY_UPSTREAMS", "127.0.0.1:9091");
        Map<String, Object> cfg = new Yaml().load(render("envoy/envoy.yaml", vars));
        Map<String, Object> listener = ((List<Map<String, Object>>) ((Map<String, Object>) cfg.get("static_resources")).get("listeners")).get(0);
        Map<String, Object> hcm = (Map<String, Object>) ((List<Map<String, Object>>) ((List<Map<String, Object>>)
                listener.get("filter_chains")).get(0).get("filters")).get(0).get("typed_config");
        List<Map<String, Object>> routes = (List<Map<String, Object>>) ((List<Map<String, Object>>)
                ((Map<String, Object>) hcm.get("route_config")).get("virtual_hosts")).get(0).get("routes");
        Map<String, Object> watch = routes.stream()
                .filter(r -> String.valueOf(((Map<String, Object>) r.get("match")).get("prefix")).equals("/kvmesh.v1.KeyValue/Watch"))
                .findFirst().orElseThrow(() -> new AssertionError("no Watch route"));
        Map<String, Object> route = (Map<String, Object>) watch.get("route");
        assertThat(route).as("Watch route: no deadline, no idle timeout (0s = off)")
                .containsEntry("timeout", "0s").containsEntry("idle_timeout", "0s");
        assertThat(routes.indexOf(watch)).as("the Watch route comes before the catch-all").isZero();

        String nginx = render("nginx/nginx.conf", env("nginx"));
        String location = nginx.substring(nginx.indexOf("location /kv/watch {"));
        location = location.substring(0, location.indexOf('}'));
        for (String timeout : List.of("proxy_read_timeout", "proxy_send_timeout", "send_timeout")) {
            Matcher m = Pattern.compile("(?m)^\\s*" + timeout + " (\\d+)h;").matcher(location);
            assertThat(m.find()).as("%s in hours in nginx's /kv/watch location", timeout).isTrue();
            assertThat(Integer.parseInt(m.group(1))).as(timeout).isGreaterThanOrEqualTo(24);
        }
    }

    /** The edge's answers to what users and fuzzers send (issue 11), as configured; EdgeE2ETest shows them live. */
    @Test
    void edge_transcoderReadsLimitValues_forgivesQueries_checksJson_andAnswersErrorsInOneScheme() throws Exception {
        Map<String, String> vars = new HashMap<>(dockerfileEnv("envoy"));
        vars.put("KVMESH_ENVOY_DNS", "STATIC");
        vars.put("KVMESH_ENVOY_UPSTREAMS", "127.0.0.1:9091");
        String rendered = render("envoy/envoy.yaml", vars);
        Map<String, Object> cfg = new Yaml().load(rendered);
        Map<String, Object> listener = ((List<Map<String, Object>>) ((Map<String, Object>) cfg.get("static_resources")).get("listeners")).get(0);
        Map<String, Object> hcm = (Map<String, Object>) ((List<Map<String, Object>>) ((List<Map<String, Object>>)
                listener.get("filter_chains")).get(0).get("filters")).get(0).get("typed_config");
        List<Map<String, Object>> filters = (List<Map<String, Object>>) hcm.get("http_filters");
        List<String> names = filters.stream().map(f -> String.valueOf(f.get("name"))).toList();
        assertThat(names.indexOf("envoy.filters.http.lua")).as("the JSON check runs before the transcoder")
                .isPositive().isLessThan(names.indexOf("envoy.filters.http.grpc_json_transcoder"));
        Map<String, Object> transcoder = (Map<String, Object>) filters.get(names.indexOf("envoy.filters.http.grpc_json_transcoder"))
                .get("typed_config");
        // a 1 MiB value escaped six-fold, and a page of ~4 MiB of values escaped six-fold plus keys
        assertThat(((Number) transcoder.get("max_request_body_size")).longValue()).isGreaterThanOrEqualTo(6L << 20);
        assertThat(((Number) transcoder.get("max_response_body_size")).longValue()).isGreaterThanOrEqualTo(30L << 20);
        assertThat(transcoder).containsEntry("ignore_unknown_query_parameters", true).containsEntry("query_param_unescape_plus", true);
        assertThat((Map<String, Object>) transcoder.get("print_options")).containsEntry("always_print_primitive_fields", true)
                .containsEntry("stream_newline_delimited", true);
        // Envoy's own error replies carry gRPC codes, never the HTTP status
        assertThat(rendered).doesNotContain("code: \"%RESPONSE_CODE%\"")
                .contains("default_value: 404", "code: 5,", "default_value: 503", "code: 14,", "default_value: 413", "code: 8,");
        Path envoy = root.resolve(".run/venv/bin/envoy");
        if (Files.isExecutable(envoy)) {   // every option exists in the Envoy we run
            Path file = Files.createTempFile("kvmesh-envoy", ".yaml");
            Files.writeString(file, rendered.replace(vars.get("KVMESH_DESCRIPTOR"), root.resolve("proto/target/descriptor/kvmesh.pb").toString()));
            if (Files.exists(root.resolve("proto/target/descriptor/kvmesh.pb"))) {
                Process p = new ProcessBuilder(envoy.toString(), "--mode", "validate", "-c", file.toString()).redirectErrorStream(true).start();
                String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
                assertThat(p.exitValue()).as(log).isZero();
            }
            Files.delete(file);
        }

        String nginx = render("nginx/nginx.conf", env("nginx"));
        Matcher codes = Pattern.compile("location = /__error/(\\d{3}) \\{[^}]*?'\\{\"code\":(\\d+),").matcher(nginx);
        Map<String, String> grpcOf = new HashMap<>();
        while (codes.find()) {
            grpcOf.put(codes.group(1), codes.group(2));
        }
        assertThat(grpcOf).containsEntry("400", "3").containsEntry("404", "5").containsEntry("405", "12").containsEntry("413", "8")
                .containsEntry("414", "8").containsEntry("494", "8").containsEntry("502", "14").containsEntry("503", "14").containsEntry("504", "4");
        assertThat(nginx).contains("add_header Allow $kvmesh_allow always;", "application/x-ndjson", "proxy_hide_header grpc-encoding;");
    }

    /** Native mode's source: start.sh and the stack manager it hands over to (scripts/kvstack/stack and its templates). */
    private static String nativeMode() throws IOException {
        StringBuilder text = new StringBuilder(Files.readString(root.resolve("start.sh")));
        for (String dir : List.of("scripts/kvstack/stack", "scripts/kvstack/templates/stack")) {
            try (var files = Files.list(root.resolve(dir))) {
                for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                    text.append('\n').append(Files.readString(f));
                }
            }
        }
        return text.toString();
    }

    private static String startSh(Path runDir, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("bash", root.resolve("start.sh").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("KVMESH_MODE", "native");
        pb.environment().put("KVMESH_RUN_DIR", runDir.toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return p.exitValue() + "\n" + out;
    }

    /** After a clean stop (the stack's settings stay, nothing runs): status says stopped; logs lists nginx's two logs. */
    @Test
    void startSh_statusSaysStopped_afterAStop_andLogsListsNginxLogs(@org.junit.jupiter.api.io.TempDir Path run) throws Exception {
        Files.writeString(run.resolve("stack.env"), "KVMESH_HTTP_PORT=1\nKVMESH_ENVOY_PORT=2\nKVMESH_ENVOY_ADMIN_PORT=3\n"
                + "KVMESH_REPLICAS=1\nKVMESH_CONSUMERS=1\nKVMESH_REPLICA_PORTS=4\nKVMESH_CONSUMER_HTTP_PORTS=5\n");
        Files.createDirectories(run.resolve("nginx/logs"));
        Files.createDirectories(run.resolve("logs"));
        Files.writeString(run.resolve("nginx/logs/access.log"), "");
        Files.writeString(run.resolve("nginx/logs/error.log"), "");
        Files.writeString(run.resolve("logs/envoy.log"), "");
        String status = startSh(run, "status");
        assertThat(status).doesNotStartWith("0\n").contains("stopped").doesNotContain("not (fully) healthy");
        String logs = startSh(run, "logs");
        assertThat(logs).startsWith("0\n").contains("envoy.log", "nginx-access", "nginx-error");
    }

    /** Issue 12: every store needs a generated password in containers too; compose refuses to start without them. */
    @Test
    void compose_storesNeedGeneratedPasswords_andNoneHasADefault() throws IOException {
        String text = Files.readString(root.resolve("docker-compose.yml"));
        Matcher ref = Pattern.compile("\\$\\{(KVMESH_[A-Z_]*PASSWORD)([^}]*)}").matcher(text);
        Set<String> secrets = new TreeSet<>();
        while (ref.find()) {
            assertThat(ref.group(2)).as("${%s...} refuses to start without it", ref.group(1)).startsWith(":?");
            secrets.add(ref.group(1));
        }
        assertThat(secrets).containsExactly("KVMESH_AMQP_PASSWORD", "KVMESH_PG_PASSWORD", "KVMESH_PG_SUPERUSER_PASSWORD",
                "KVMESH_REDIS_PASSWORD");
        Map<String, String> pg = env("postgres");
        assertThat(pg.get("POSTGRES_USER")).isEqualTo("postgres");
        assertThat(pg.get("POSTGRES_PASSWORD")).startsWith("${KVMESH_PG_SUPERUSER_PASSWORD:?");
        assertThat(pg.get("POSTGRES_INITDB_ARGS")).contains("--auth=scram-sha-256");
        assertThat(pg.get("POSTGRES_HOST_AUTH_METHOD")).isEqualTo("scram-sha-256");
        assertThat(String.valueOf(service("postgres").get("volumes"))).contains("./docker/postgres-init.sh:/docker-entrypoint-initdb.d/");
        assertThat(Files.readString(root.resolve("docker/postgres-init.sh"))).contains("CREATE ROLE kvmesh LOGIN", ":'app_password'");
        assertThat(String.valueOf(service("redis").get("command"))).contains("--requirepass, ${KVMESH_REDIS_PASSWORD:?");
        assertThat(String.valueOf(((Map<String, Object>) service("redis").get("healthcheck")).get("test"))).contains("PONG");
        assertThat(env("rabbitmq")).containsEntry("RABBITMQ_DEFAULT_USER", "kvmesh");
        assertThat(env("rabbitmq").get("RABBITMQ_DEFAULT_PASS")).startsWith("${KVMESH_AMQP_PASSWORD:?");
        for (String app : List.of("kv-service", "kv-consumer")) {
            Map<String, String> e = env(app);
            assertThat(e.get("KVMESH_PG_USER")).isEqualTo("kvmesh");
            assertThat(e.get("KVMESH_PG_PASSWORD")).startsWith("${KVMESH_PG_PASSWORD:?");
            assertThat(e.get("KVMESH_REDIS_URI")).startsWith("redis://:${KVMESH_REDIS_PASSWORD:?");
            assertThat(e.get("KVMESH_AMQP_URI")).startsWith("amqp://kvmesh:${KVMESH_AMQP_PASSWORD:?");
        }
        assertThat(nativeMode()).contains("commands.ensure_compose_secrets(root, environ)");
    }

    /**
     * Issue 12: nothing the stack runs or is configured with logs in as guest, trusts a connection, or carries a
     * fixed password (comments may say so; code and configuration may not).
     */
    @Test
    void nothingTheStackRuns_namesGuest_trustsAConnection_orHasAFixedPassword() throws IOException {
        List<String> files = new java.util.ArrayList<>(List.of("start.sh", "test.sh", "docker-compose.yml", ".env.example",
                "docker/Dockerfile", "docker/postgres-init.sh", "ghz-bench/run.sh", "ghz-bench/bench.py"));
        try (var scripts = Files.list(root.resolve("scripts"))) {
            scripts.filter(f -> f.toString().endsWith(".sh")).forEach(f -> files.add(root.relativize(f).toString()));
        }
        for (String dir : List.of("scripts/kvstack", "scripts/kvstack/stack", "scripts/kvstack/servers")) {
            try (var stack = Files.list(root.resolve(dir))) {
                stack.filter(f -> f.toString().endsWith(".py")).forEach(f -> files.add(root.relativize(f).toString()));
            }
        }
        for (String dir : List.of("scripts/kvstack/templates/stack", "scripts/kvstack/templates/servers")) {
            try (var templates = Files.list(root.resolve(dir))) {
                templates.filter(f -> f.toString().endsWith(".j2")).forEach(f -> files.add(root.relativize(f).toString()));
            }
        }
        try (var faults = Files.list(root.resolve("scripts/faults"))) {
            faults.filter(f -> f.toString().endsWith(".py")).forEach(f -> files.add(root.relativize(f).toString()));
        }
        try (var config = Files.list(root.resolve("kv-core/src/main/java/io/kvmesh/core/config"))) {
            config.forEach(f -> files.add(root.relativize(f).toString()));
        }
        Pattern forbidden = Pattern.compile("(?i)guest"
                + "|--auth(-local|-host)?=(trust|password|md5)|AUTH_METHOD: *trust"          // PostgreSQL authentication
                + "|PASSWORD '[^'$]"                                                          // a literal role password
                + "|(PASSWORD|PASS)[\"']?\\s*[=:,]\\s*[\"']?(kvmesh|postgres|guest|password|secret|changeme)\\b"
                + "|:-(kvmesh|postgres|guest|password|secret)}"                                // a compose default
                + "|\"KVMESH_PG_PASSWORD\", \"[^\"]"                                          // a default in code
                + "|(?-i://[a-z0-9_.-]*:[a-z0-9_.-]+@)");                                     // a URI with a literal password
        for (String file : files) {
            List<String> lines = Files.readAllLines(root.resolve(file));
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i).trim();
                if (line.startsWith("#") || line.startsWith("//") || line.startsWith("*") || line.startsWith("/*")
                        || line.startsWith(";")) {
                    continue;
                }
                assertThat(forbidden.matcher(line).find()).as("%s:%d: %s", file, i + 1, line).isFalse();
            }
        }
        String servers = Files.readString(root.resolve("scripts/kvstack/servers/postgres.py"))
                + Files.readString(root.resolve("scripts/kvstack/templates/servers/redis-auth.conf.j2"))
                + Files.readString(root.resolve("scripts/kvstack/templates/servers/rabbitmq.conf.j2"))
                + Files.readString(root.resolve("scripts/kvstack/servers/common.py"));
        assertThat(servers).contains("--auth=scram-sha-256", "requirepass {{ password }}", "default_user = {{ user }}", "0o600");
    }

    /** Each replica serves /healthz and /metrics on its admin port in both modes; Prometheus is read from loopback only. */
    @Test
    void metrics_replicaAdminPort_inComposeAndNativeMode_andPrometheusOnlyFromLoopback() throws Exception {
        assertThat(env("kv-service").get("KVMESH_ADMIN_PORT")).as("KVMESH_ADMIN_PORT of kv-service").matches("\\d+");
        assertThat(env("kv-service")).containsEntry("KVMESH_ADMIN_BIND", "0.0.0.0");
        assertThat(Files.readString(root.resolve(".env.example"))).contains("KVMESH_ADMIN_PORT=", "KVMESH_ADMIN_BIND=127.0.0.1");
        assertThat(nativeMode())
                .contains("KVMESH_ADMIN_PORT", "KVMESH_REPLICA_ADMIN_PORTS", "KVMESH_PROMETHEUS", "/stats/prometheus");

        String nginx = render("nginx/nginx.conf", env("nginx"));
        String location = nginx.substring(nginx.indexOf("location = /prometheus/api/v1/query {"));
        location = location.substring(0, location.indexOf("\n    }"));
        assertThat(location).contains("allow 127.0.0.1;", "allow ::1;", "deny all;", "/api/v1/query;")
                .doesNotContain("allow all");
        assertThat(nginx).as("no other Prometheus path is proxied").containsOnlyOnce("/prometheus/");
    }

    @Test
    void nginxTemplate_rendersWithEveryPlaceholderFilled() throws Exception {
        String conf = render("nginx/nginx.conf", env("nginx"));
        assertThat(conf).contains("client_max_body_size 2m;", "proxy_buffering off;", "keepalive ", "$upstream_response_time");
        assertThat(root.resolve("nginx/html/index.html")).exists();
    }
}
