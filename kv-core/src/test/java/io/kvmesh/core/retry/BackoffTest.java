package io.kvmesh.core.retry;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Duration;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BackoffTest {

    static Stream<Arguments> delays() {
        return Stream.of(
                Arguments.of(50, 2_000, 1, 50),
                Arguments.of(50, 2_000, 2, 100),
                Arguments.of(50, 2_000, 3, 200),
                Arguments.of(50, 2_000, 6, 1_600),
                Arguments.of(50, 2_000, 7, 2_000),
                Arguments.of(50, 2_000, 1_000, 2_000),
                Arguments.of(200, 5_000, Integer.MAX_VALUE, 5_000),
                Arguments.of(300, 300, 4, 300),
                Arguments.of(300, 1_000, 3, 1_000));
    }

    @ParameterizedTest(name = "first {0} ms, max {1} ms: retry {2} waits {3} ms")
    @MethodSource("delays")
    void delay_doublesFromFirstUpToMax(long first, long max, int retry, long expected) {
        assertThat(Backoff.of(first, max).delay(retry)).isEqualTo(Duration.ofMillis(expected));
    }

    @Test
    void delays_countFailures_andStartOverAfterReset() {
        Backoff.Delays d = Backoff.of(10, 35).delays();
        assertThat(d.next()).isEqualTo(Duration.ofMillis(10));
        assertThat(d.next()).isEqualTo(Duration.ofMillis(20));
        assertThat(d.next()).isEqualTo(Duration.ofMillis(35));
        assertThat(d.retries()).isEqualTo(3);
        d.reset();
        assertThat(d.retries()).isZero();
        assertThat(d.next()).isEqualTo(Duration.ofMillis(10));
    }

    @Test
    void delays_ofOnePolicy_areIndependent() {
        Backoff policy = Backoff.of(10, 100);
        Backoff.Delays a = policy.delays();
        a.next();
        a.next();
        assertThat(policy.delays().next()).isEqualTo(Duration.ofMillis(10));
    }

    @Test
    void policy_refusesNonsense() {
        assertThatThrownBy(() -> Backoff.of(0, 10)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Backoff.of(100, 10)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Backoff.of(10, 100).delay(0)).isInstanceOf(IllegalArgumentException.class);
    }
}
