package io.kvmesh.core.store;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.kvmesh.core.config.PostgresConfig;
import io.kvmesh.core.retry.Backoff;
import org.flywaydb.core.Flyway;
import org.jdbi.v3.core.Jdbi;
import org.jdbi.v3.core.argument.AbstractArgumentFactory;
import org.jdbi.v3.core.argument.Argument;
import org.jdbi.v3.core.config.ConfigRegistry;
import org.jdbi.v3.postgres.PostgresPlugin;
import org.jdbi.v3.sqlobject.SqlObjectPlugin;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Types;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;

/** The PostgreSQL connection pool, its schema migrations and the Jdbi handle factory built on it. */
public final class Database implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Database.class);
    private static final Backoff STARTUP_BACKOFF = Backoff.of(200, 2_000);

    private final HikariDataSource dataSource;
    private final Jdbi jdbi;

    private Database(HikariDataSource dataSource) {
        this.dataSource = dataSource;
        this.jdbi = Jdbi.create(dataSource)
                .installPlugin(new SqlObjectPlugin())
                .installPlugin(new PostgresPlugin())
                .registerArgument(new InstantArgumentFactory())
                .registerColumnMapper(Instant.class, (rs, col, ctx) -> {
                    OffsetDateTime t = rs.getObject(col, OffsetDateTime.class);
                    return t == null ? null : t.toInstant();
                });
    }

    /**
     * Opens the pool and applies pending migrations, waiting up to {@code startupTimeout} for the
     * database to accept connections. Flyway's lock makes concurrent start-ups of several processes safe.
     */
    public static Database open(PostgresConfig config, Duration startupTimeout) {
        HikariConfig hc = new HikariConfig();
        hc.setJdbcUrl(config.url());
        hc.setUsername(config.user());
        hc.setPassword(config.password());
        hc.setMaximumPoolSize(config.poolSize());
        hc.setMinimumIdle(Math.min(2, config.poolSize()));
        hc.setConnectionTimeout(2_000);
        hc.setValidationTimeout(1_000);
        hc.setInitializationFailTimeout(-1);
        hc.setPoolName("kvmesh-pg");
        hc.addDataSourceProperty("reWriteBatchedInserts", "true");
        hc.addDataSourceProperty("connectTimeout", "2");
        hc.addDataSourceProperty("socketTimeout", "30");
        hc.addDataSourceProperty("tcpKeepAlive", "true");
        HikariDataSource ds = new HikariDataSource(hc);
        try {
            migrate(ds, startupTimeout);
        } catch (RuntimeException e) {
            ds.close();
            throw e;
        }
        return new Database(ds);
    }

    private static void migrate(HikariDataSource ds, Duration startupTimeout) {
        long deadline = System.nanoTime() + startupTimeout.toNanos();
        Flyway flyway = Flyway.configure().dataSource(ds).locations("classpath:db/migration").load();
        Backoff.Delays backoff = STARTUP_BACKOFF.delays();
        while (true) {
            try {
                var result = flyway.migrate();
                var current = flyway.info().current();
                log.info("schema at version {} ({} migrations applied now)",
                        current == null ? "none" : current.getVersion(), result.migrationsExecuted);
                return;
            } catch (RuntimeException e) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("PostgreSQL not reachable or schema migration failed: " + e.getMessage(), e);
                }
                log.warn("waiting for PostgreSQL: {}", e.getMessage());
                sleepQuietly(backoff);
            }
        }
    }

    private static void sleepQuietly(Backoff.Delays backoff) {
        try {
            backoff.sleep();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for PostgreSQL", e);
        }
    }

    public Jdbi jdbi() {
        return jdbi;
    }

    @Override
    public void close() {
        dataSource.close();
    }

    /** Binds {@link Instant} as {@code timestamptz} in UTC, independent of the JVM's time zone. */
    private static final class InstantArgumentFactory extends AbstractArgumentFactory<Instant> {
        InstantArgumentFactory() {
            super(Types.TIMESTAMP_WITH_TIMEZONE);
        }

        @Override
        protected Argument build(Instant value, ConfigRegistry config) {
            return (position, statement, ctx) -> statement.setObject(position, value.atOffset(ZoneOffset.UTC));
        }
    }
}
