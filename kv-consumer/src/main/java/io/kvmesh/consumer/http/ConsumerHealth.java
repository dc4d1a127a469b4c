package io.kvmesh.consumer.http;

import io.kvmesh.consumer.KvConsumer;
import io.kvmesh.core.admin.HealthCheck;

import java.util.Optional;

/**
 * Whether this consumer can do its job: it is consuming every partition queue (active or standby) and PostgreSQL
 * answers. "starting" until {@link #watch} hands it the running consumer.
 */
public final class ConsumerHealth implements HealthCheck {
    private volatile KvConsumer consumer;

    public void watch(KvConsumer running) {
        this.consumer = running;
    }

    @Override
    public Optional<String> problem() {
        KvConsumer c = consumer;
        if (c == null) {
            return Optional.of("starting");
        }
        if (!c.isConsuming()) {
            return Optional.of("not consuming: the broker connection or a partition channel is closed");
        }
        if (!c.databaseReachable()) {
            return Optional.of("PostgreSQL unreachable");
        }
        return Optional.empty();
    }
}
