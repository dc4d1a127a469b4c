package io.kvmesh.service;

import io.grpc.protobuf.services.HealthStatusManager;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

/** The admin endpoint's /healthz says what gRPC health says, with the reason when the replica cannot serve. */
class HealthMonitorTest {
    @Test
    void problem_namesWhatIsMissing_untilTheReplicaCanServe() {
        AtomicBoolean broker = new AtomicBoolean(false);
        AtomicBoolean events = new AtomicBoolean(true);
        HealthMonitor monitor = new HealthMonitor(new HealthStatusManager(), broker::get, () -> Duration.ZERO,
                Duration.ofSeconds(2), events::get);
        assertThat(monitor.problem()).hasValue("not checked yet");

        monitor.run();
        assertThat(monitor.problem()).get().asString().contains("NOT_SERVING", "broker connection for writes: down");

        broker.set(true);
        monitor.run();
        assertThat(monitor.problem()).isEmpty();
        assertThat(monitor.serving()).isTrue();

        monitor.stop();
        assertThat(monitor.problem()).hasValue("shutting down");
    }

    /** A connection that stays open while nothing is confirmed (a network partition): writes would only wait. */
    @Test
    void confirmsStalled_notServing_untilTheyFlowAgain() {
        AtomicReference<Duration> unconfirmed = new AtomicReference<>(Duration.ofMillis(1_900));
        HealthMonitor monitor = new HealthMonitor(new HealthStatusManager(), () -> true, unconfirmed::get,
                Duration.ofSeconds(2), () -> true);
        monitor.run();
        assertThat(monitor.serving()).isTrue();

        unconfirmed.set(Duration.ofMillis(2_500));
        monitor.run();
        assertThat(monitor.serving()).isFalse();
        assertThat(monitor.problem()).get().asString().contains("up, but no confirm for 2500 ms");

        unconfirmed.set(Duration.ZERO);
        monitor.run();
        assertThat(monitor.serving()).isTrue();
    }
}
