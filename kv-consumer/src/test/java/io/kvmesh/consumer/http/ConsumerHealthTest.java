package io.kvmesh.consumer.http;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;

class ConsumerHealthTest {

    @Test
    void startingUntilStarted_stoppingOnceStopped() {
        ConsumerHealth health = new ConsumerHealth();
        assertThat(health.problem()).contains("starting");
        health.started(() -> true, () -> true);
        assertThat(health.problem()).isEmpty();
        health.stopping();
        assertThat(health.problem()).contains("stopping");
    }

    @ParameterizedTest(name = "consuming={0}, database={1} -> {2}")
    @CsvSource(delimiter = '|', value = {
            "true  | true  | ''",
            "false | true  | not consuming: the broker connection or a partition channel is closed",
            "true  | false | PostgreSQL unreachable",
            "false | false | not consuming: the broker connection or a partition channel is closed"})
    void running_reportsTheFirstProblem(boolean consuming, boolean database, String problem) {
        ConsumerHealth health = new ConsumerHealth();
        health.started(() -> consuming, () -> database);

        assertThat(health.problem().orElse("")).isEqualTo(problem);
    }
}
