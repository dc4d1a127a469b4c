package io.kvmesh.core.testing;

import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.config.RedisConfig;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * The real PostgreSQL, Redis and RabbitMQ that {@code ./test.sh} starts for one test run (their addresses come in
 * {@code KVMESH_*} variables). Each test class takes an {@link Isolation}: its own database, Redis key prefix and
 * queue names, so classes never see each other's data.
 */
public final class TestServers {
    private TestServers() {
    }

    public static Env env() {
        Env env = Env.system();
        if (env.string("KVMESH_TEST_RUN_DIR", "").isEmpty()) {
            throw new IllegalStateException("integration tests need the throwaway servers of ./test.sh "
                    + "(KVMESH_TEST_RUN_DIR and KVMESH_PG_URL, KVMESH_REDIS_URI, KVMESH_AMQP_URI are not set)");
        }
        return env;
    }

    /** Creates a fresh database and unique cache and queue prefixes for one test class. */
    public static Isolation isolate(String name) {
        Env env = env();
        String id = name.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]", "") + "_"
                + UUID.randomUUID().toString().substring(0, 8);
        PostgresConfig base = PostgresConfig.from(env);
        String db = "t_" + id;
        execute(base, "CREATE DATABASE " + db);
        String url = base.url().substring(0, base.url().lastIndexOf('/') + 1) + db;
        return new Isolation(id, base.withUrl(url), RedisConfig.from(env).withKeyPrefix(id + ":"),
                AmqpConfig.from(env).withNamePrefix(id), base, db);
    }

    /** Stops or starts one server of the run, keeping its port and data ({@code part}: redis, postgres, rabbitmq). */
    public static void ctl(String part, String action) {
        servers("ctl", part, action);
    }

    /** {@code rabbitmqctl ARGS} against the run's broker (e.g. {@code set_disk_free_limit 50MB}). */
    public static void rabbitmqctl(String... args) {
        servers("rabbitmqctl", args);
    }

    /** {@code scripts/servers.sh COMMAND RUN_DIR ARGS}; fails with its output unless it exits 0 within 120 s. */
    private static void servers(String command, String... args) {
        Env env = env();
        List<String> cmd = new ArrayList<>(List.of(env.string("KVMESH_TEST_SERVERS", "scripts/servers.sh"), command,
                env.string("KVMESH_TEST_RUN_DIR", "")));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        try {
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException("servers.sh " + command + " " + String.join(" ", args) + " failed: "
                        + out);
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static void execute(PostgresConfig pg, String sql) {
        try (Connection c = DriverManager.getConnection(pg.url(), pg.user(), pg.password());
             Statement st = c.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            throw new IllegalStateException(sql + ": " + e.getMessage(), e);
        }
    }

    /** One test class's share of the servers; closing it drops the database. */
    public record Isolation(String id, PostgresConfig postgres, RedisConfig redis, AmqpConfig amqp,
                            PostgresConfig admin, String database) implements AutoCloseable {

        public Duration startupTimeout() {
            return Duration.ofSeconds(30);
        }

        @Override
        public void close() {
            execute(admin, "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
        }
    }
}
