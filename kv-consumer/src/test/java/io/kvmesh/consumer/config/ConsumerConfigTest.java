package io.kvmesh.consumer.config;

import io.kvmesh.core.config.Env;
import io.kvmesh.core.retry.Backoff;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.time.Duration;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ConsumerConfigTest {

    @Test
    void instance_comesFromKvmeshInstance() {
        assertThat(ConsumerConfig.instance(new Env(Map.of("KVMESH_INSTANCE", "kv-consumer-2", "HOSTNAME", "box7")),
                9190)).isEqualTo("kv-consumer-2");
    }

    @Test
    void instance_defaultsToHostAndAdminPort() {
        assertThat(ConsumerConfig.instance(new Env(Map.of("HOSTNAME", "box7")), 9555)).isEqualTo("box7:9555");
    }

    @ParameterizedTest(name = "KVMESH_RETRY_BACKOFF_MAX_MS={0}: first {1} ms, max {2} ms")
    @CsvSource({"2000, 50, 2000", "500, 50, 500", "20, 20, 20", "0, 1, 1"})
    void retryBackoff_startsAt50ms_upToTheConfiguredMaximum(long max, long first, long last) {
        ConsumerConfig config = new ConsumerConfig(1, 1, 1, Duration.ofMillis(max), Duration.ofMillis(1),
                Duration.ofMillis(1), Duration.ofMillis(1), Duration.ofHours(1), null, null, null, "127.0.0.1", 0, "x");

        assertThat(config.retryBackoff()).isEqualTo(Backoff.of(first, last));
    }

    @Test
    void oplogRetention_isHours_orSecondsWhenSet_atLeastTen() {
        assertThat(ConsumerConfig.oplogRetention(new Env(Map.of()))).isEqualTo(Duration.ofHours(168));
        assertThat(ConsumerConfig.oplogRetention(new Env(Map.of("KVMESH_OPLOG_RETENTION_HOURS", "2"))))
                .isEqualTo(Duration.ofHours(2));
        assertThat(ConsumerConfig.oplogRetention(new Env(Map.of("KVMESH_OPLOG_RETENTION_HOURS", "2",
                "KVMESH_OPLOG_RETENTION_SECONDS", "120")))).isEqualTo(Duration.ofSeconds(120));
        assertThatThrownBy(() -> ConsumerConfig.oplogRetention(new Env(Map.of("KVMESH_OPLOG_RETENTION_SECONDS", "5"))))
                .hasMessageContaining("at least 10");
    }
}
