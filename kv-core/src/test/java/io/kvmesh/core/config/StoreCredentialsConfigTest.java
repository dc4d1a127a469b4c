package io.kvmesh.core.config;

import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The stores' credentials have no defaults: a process without them stops at start-up and says why. */
class StoreCredentialsConfigTest {
    private static final Map<String, String> COMPLETE = Map.of(
            "KVMESH_PG_PASSWORD", "pg-secret",
            "KVMESH_REDIS_URI", "redis://:redis-secret@127.0.0.1:6379",
            "KVMESH_AMQP_URI", "amqp://kvmesh:amqp-secret@127.0.0.1:5672/%2F");

    private static Env without(String name) {
        Map<String, String> vars = new java.util.HashMap<>(COMPLETE);
        vars.remove(name);
        return new Env(vars);
    }

    @Test
    void postgres_refusesToStart_withoutAPassword() {
        assertThatThrownBy(() -> PostgresConfig.from(without("KVMESH_PG_PASSWORD")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("KVMESH_PG_PASSWORD is not set");
    }

    @Test
    void amqp_refusesToStart_withoutAUri_orWithoutCredentialsInIt() {
        assertThatThrownBy(() -> AmqpConfig.from(without("KVMESH_AMQP_URI")))
                .hasMessageContaining("KVMESH_AMQP_URI is not set");
        // without user info the client would log in as guest/guest
        assertThatThrownBy(() -> AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", "amqp://127.0.0.1:5672/%2F"))))
                .hasMessageContaining("KVMESH_AMQP_URI carries no password");
        assertThatThrownBy(() -> AmqpConfig.from(new Env(Map.of("KVMESH_AMQP_URI", "amqp://kvmesh:@127.0.0.1:5672/%2F"))))
                .hasMessageContaining("carries no password");
    }

    @Test
    void redis_refusesToStart_withoutAUri_orWithoutAPasswordInIt() {
        assertThatThrownBy(() -> RedisConfig.from(without("KVMESH_REDIS_URI")))
                .hasMessageContaining("KVMESH_REDIS_URI is not set");
        assertThatThrownBy(() -> RedisConfig.from(new Env(Map.of("KVMESH_REDIS_URI", "redis://127.0.0.1:6379"))))
                .hasMessageContaining("KVMESH_REDIS_URI carries no password");
        assertThat(RedisConfig.from(new Env(Map.of("KVMESH_REDIS_URI", "redis://cache:pw@127.0.0.1:6379"))).uri())
                .isEqualTo("redis://cache:pw@127.0.0.1:6379");
    }

    @Test
    void toString_neverShowsAPassword() {
        Env env = new Env(COMPLETE);
        String printed = PostgresConfig.from(env) + " " + RedisConfig.from(env) + " " + AmqpConfig.from(env);
        assertThat(printed).doesNotContain("secret").contains("127.0.0.1:6379", "127.0.0.1:5672");
    }
}
