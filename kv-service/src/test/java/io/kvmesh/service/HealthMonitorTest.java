package io.kvmesh.service;

import io.grpc.protobuf.services.HealthStatusManager;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;

/** The admin endpoint's /healthz says what gRPC health says, with the reason when the replica cannot serve. */
class HealthMonitorTest {
    @Test
    void problem_namesWhatIsMissing_untilTheReplicaCanServe() {
        AtomicBoolean broker = new AtomicBoolean(false);
        AtomicBoolean events = new AtomicBoolean(true);
        HealthMonitor monitor = new HealthMonitor(new HealthStatusManager(), broker::get, events::get);
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
}
