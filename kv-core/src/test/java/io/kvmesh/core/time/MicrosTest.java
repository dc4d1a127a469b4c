package io.kvmesh.core.time;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

class MicrosTest {

    static Stream<Arguments> pairs() {
        return Stream.of(
                Arguments.of("1970-01-01T00:00:00Z", 0L),
                Arguments.of("1970-01-01T00:00:00.000001Z", 1L),
                Arguments.of("2026-11-25T12:34:56.789012Z", 1_795_610_096_789_012L),
                Arguments.of("1969-12-31T23:59:59.999999Z", -1L));
    }

    @ParameterizedTest(name = "{0} <-> {1}")
    @MethodSource("pairs")
    void convertsBothWays(String instant, long micros) {
        assertThat(Micros.of(Instant.parse(instant))).isEqualTo(micros);
        assertThat(Micros.toInstant(micros)).isEqualTo(Instant.parse(instant));
    }

    @Test
    void of_dropsNanosBelowAMicrosecond() {
        assertThat(Micros.of(Instant.ofEpochSecond(1, 1_999))).isEqualTo(1_000_001L);
    }

    @Test
    void zeroMeansUnset() {
        assertThat(Micros.of(null)).isZero();
        assertThat(Micros.toInstantOrNull(0)).isNull();
        assertThat(Micros.toInstantOrNull(5)).isEqualTo(Instant.ofEpochSecond(0, 5_000));
    }
}
