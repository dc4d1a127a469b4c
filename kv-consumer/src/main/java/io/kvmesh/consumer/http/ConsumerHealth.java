package io.kvmesh.consumer.http;

import io.kvmesh.core.admin.HealthCheck;

import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * Whether this consumer can do its job: it is consuming every partition queue (active or standby) and PostgreSQL
 * answers. "starting" until the consumer has started (the endpoint is bound before the stores are opened, so a
 * port in use fails at once), "stopping" once it stops.
 */
public final class ConsumerHealth implements HealthCheck {
    private enum Phase { STARTING, RUNNING, STOPPING }

    private volatile BooleanSupplier consuming = () -> false;
    private volatile BooleanSupplier databaseReachable = () -> false;
    private volatile Phase phase = Phase.STARTING;

    /** From now on health is what the checks say. */
    public void started(BooleanSupplier consuming, BooleanSupplier databaseReachable) {
        this.consuming = consuming;
        this.databaseReachable = databaseReachable;
        phase = Phase.RUNNING;
    }

    public void stopping() {
        phase = Phase.STOPPING;
    }

    @Override
    public Optional<String> problem() {
        return switch (phase) {
            case STARTING -> Optional.of("starting");
            case STOPPING -> Optional.of("stopping");
            case RUNNING -> {
                if (!consuming.getAsBoolean()) {
                    yield Optional.of("not consuming: the broker connection or a partition channel is closed");
                }
                if (!databaseReachable.getAsBoolean()) {
                    yield Optional.of("PostgreSQL unreachable");
                }
                yield Optional.empty();
            }
        };
    }
}
