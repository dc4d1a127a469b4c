package io.kvmesh.it;

import com.rabbitmq.client.AuthenticationFailureException;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.PossibleAuthenticationFailureException;
import io.kvmesh.core.config.AmqpConfig;
import io.kvmesh.core.config.Env;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.testing.TestServers;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

/**
 * Every store of the run (scripts/servers.sh) refuses a client without its generated password, and a wrong one, and
 * lets the application in with the right one; no guest user, no trust line, no password in a log.
 */
class StoreCredentialsIT {
    private static final Env ENV = TestServers.env();
    private static final PostgresConfig PG = PostgresConfig.from(ENV);
    private static final RedisURI REDIS = RedisURI.create(RedisConfig.from(ENV).uri());
    private static final String REDIS_PASSWORD = URI.create(RedisConfig.from(ENV).uri()).getUserInfo().split(":", 2)[1];
    private static final URI AMQP = URI.create(AmqpConfig.from(ENV).uri());
    private static final Path RUN = Path.of(ENV.string("KVMESH_TEST_RUN_DIR", ""));

    // ---------------------------------------------------------------- PostgreSQL

    private static java.sql.Connection postgres(String user, String password) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        if (password != null) {
            p.setProperty("password", password);
        }
        p.setProperty("connectTimeout", "5");
        return DriverManager.getConnection(PG.url(), p);
    }

    @Test
    void postgres_refusesTheApplicationRole_withAWrongPassword() {
        assertThatThrownBy(() -> postgres("kvmesh", "not-" + PG.password()).close())
                .isInstanceOf(SQLException.class)
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01")) // invalid_password
                .hasMessageContaining("password authentication failed for user \"kvmesh\"");
    }

    @Test
    void postgres_refusesTheSuperuser_withoutAPassword_andWithAGuess() {
        // the server asks for a password (SCRAM) instead of trusting the user name
        assertThatThrownBy(() -> postgres("postgres", null).close())
                .isInstanceOf(SQLException.class).hasMessageContaining("no password was provided");
        for (String guess : List.of("postgres", "kvmesh", "")) {
            assertThatThrownBy(() -> postgres("postgres", guess).close()).as("password '%s'", guess)
                    .isInstanceOf(SQLException.class);
        }
    }

    @Test
    void postgres_letsTheApplicationIn_withItsPassword_andStoresOnlyScramHashes() throws SQLException {
        try (java.sql.Connection c = postgres(PG.user(), PG.password());
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT current_user, current_setting('password_encryption')")) {
            assertThat(rs.next()).isTrue();
            assertThat(rs.getString(1)).isEqualTo("kvmesh");
            assertThat(rs.getString(2)).isEqualTo("scram-sha-256");
        }
    }

    // ---------------------------------------------------------------- Redis

    /** One command on a fresh connection, optionally after AUTH; the raw first reply line of the last command. */
    private static String redisRaw(String authPassword, String command) throws IOException {
        try (Socket s = new Socket(REDIS.getHost(), REDIS.getPort())) {
            s.setSoTimeout(5_000);
            OutputStream out = s.getOutputStream();
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            if (authPassword != null) {
                out.write(resp("AUTH", authPassword));
                String reply = in.readLine();
                if (!reply.startsWith("+")) {
                    return reply;
                }
            }
            out.write(resp(command));
            return in.readLine();
        }
    }

    private static byte[] resp(String... words) {
        StringBuilder b = new StringBuilder("*").append(words.length).append("\r\n");
        for (String w : words) {
            b.append('$').append(w.getBytes(StandardCharsets.UTF_8).length).append("\r\n").append(w).append("\r\n");
        }
        return b.toString().getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void redis_refusesCommands_withoutAuth_andAWrongPassword() throws IOException {
        assertThat(REDIS_PASSWORD).isNotBlank();
        assertThat(redisRaw(null, "PING")).startsWith("-NOAUTH");
        assertThat(redisRaw("not-" + REDIS_PASSWORD, "PING")).startsWith("-WRONGPASS");
        assertThat(redisRaw(REDIS_PASSWORD, "PING")).isEqualTo("+PONG");
    }

    @Test
    void redis_lettuceAsTheApplicationUsesIt_connectsOnlyWithThePassword() {
        RedisURI wrong = RedisURI.create("redis://:not-" + REDIS_PASSWORD + "@" + REDIS.getHost() + ":" + REDIS.getPort());
        wrong.setTimeout(Duration.ofSeconds(5));
        RedisClient client = RedisClient.create();
        try {
            Throwable refused = catchThrowable(() -> {
                try (StatefulRedisConnection<String, String> c = client.connect(wrong)) {
                    c.sync().ping();
                }
            });
            assertThat(refused).isNotNull();
            assertThat(causes(refused)).anyMatch(m -> m.contains("WRONGPASS"));
            try (StatefulRedisConnection<String, String> c = client.connect(REDIS)) {
                assertThat(c.sync().ping()).isEqualTo("PONG");
            }
        } finally {
            client.shutdown();
        }
    }

    // ---------------------------------------------------------------- RabbitMQ

    private static Connection amqp(String user, String password) throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setHost(AMQP.getHost());
        f.setPort(AMQP.getPort());
        f.setVirtualHost("/");
        f.setUsername(user);
        f.setPassword(password);
        f.setAutomaticRecoveryEnabled(false);
        f.setConnectionTimeout(5_000);
        return f.newConnection("credentials-it");
    }

    @Test
    void rabbitmq_refusesAWrongPassword_andGuest() {
        String user = AMQP.getUserInfo().split(":", 2)[0];
        String password = AMQP.getUserInfo().split(":", 2)[1];
        assertThat(user).isNotEqualTo("guest");
        assertThat(catchThrowable(() -> amqp(user, "not-" + password).close()))
                .isInstanceOfAny(AuthenticationFailureException.class, PossibleAuthenticationFailureException.class);
        assertThat(catchThrowable(() -> amqp("guest", "guest").close()))
                .isInstanceOfAny(AuthenticationFailureException.class, PossibleAuthenticationFailureException.class);
    }

    @Test
    void rabbitmq_letsTheApplicationIn_withTheConfiguredUri() throws Exception {
        try (Connection c = new AmqpConnections(AmqpConfig.from(ENV)).open("credentials-it")) {
            assertThat(c.isOpen()).isTrue();
        }
    }

    // ---------------------------------------------------------------- what the servers run with

    @Test
    void runFolder_keepsThePasswordsPrivate_andNoConfigTrustsOrNamesGuest() throws IOException {
        Path credentials = Path.of(ENV.string("KVMESH_CREDENTIALS_FILE", RUN.resolve("secrets/credentials.env").toString()));
        Set<PosixFilePermission> ownerRw = Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE);
        assertThat(Files.getPosixFilePermissions(credentials)).isEqualTo(ownerRw);
        assertThat(Files.getPosixFilePermissions(RUN.resolve("servers.env"))).isEqualTo(ownerRw);

        List<String> secrets = new ArrayList<>();
        for (String line : Files.readAllLines(credentials)) {
            if (line.startsWith("KVMESH_") && line.contains("PASSWORD=")) {
                secrets.add(line.substring(line.indexOf('=') + 1));
            }
        }
        assertThat(secrets).hasSize(4).allSatisfy(s -> assertThat(s).hasSizeGreaterThanOrEqualTo(24)).doesNotHaveDuplicates();

        Path hba = RUN.resolve("postgres/data/pg_hba.conf");
        if (Files.isReadable(hba)) {   // the data folder is the postgres user's: readable when the tests run as root
            assertThat(Files.readAllLines(hba)).filteredOn(l -> !l.isBlank() && !l.trim().startsWith("#"))
                    .isNotEmpty().allSatisfy(l -> assertThat(l.trim()).endsWith("scram-sha-256"));
        }
        Path rabbitConf = RUN.resolve("rabbitmq/rabbitmq.conf");
        if (Files.isReadable(rabbitConf)) {
            assertThat(Files.readString(rabbitConf)).doesNotContainIgnoringCase("guest").contains("default_user = kvmesh");
        }
        // no password in any log of the run
        try (Stream<Path> logs = Files.walk(RUN.resolve("logs"))) {
            for (Path log : logs.filter(Files::isRegularFile).filter(Files::isReadable).toList()) {
                String text = Files.readString(log, StandardCharsets.ISO_8859_1);
                for (String secret : secrets) {
                    assertThat(text.contains(secret)).as("a password in %s", log).isFalse();
                }
            }
        }
    }

    private static List<String> causes(Throwable t) {
        List<String> out = new ArrayList<>();
        for (Throwable c = t; c != null; c = c.getCause()) {
            out.add(String.valueOf(c.getMessage()));
        }
        return out;
    }
}
