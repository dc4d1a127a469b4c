package io.kvmesh.service;

import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.protobuf.services.HealthStatusManager;
import io.kvmesh.api.v1.KeyValueGrpc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Keeps the replica's gRPC health true to what it can do: SERVING only while it can publish writes (a broker
 * connection whose confirms keep coming: a connection that is open but gets no confirm for a while, as in a network
 * partition, makes every write wait for its confirm timeout) and receive change events (the subscription SYNC writes
 * and Watch depend on). Envoy's health checks then route away from a replica that cannot do its job, and back once it
 * can. Reads alone do not make a replica healthy: when every replica is unhealthy (a broker outage), Envoy's panic
 * routing still sends them reads.
 */
final class HealthMonitor implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(HealthMonitor.class);

    private final HealthStatusManager health;
    private final BooleanSupplier canPublish;
    private final Supplier<Duration> unconfirmedFor;
    private final Duration stallLimit;
    private final BooleanSupplier receivesEvents;
    private volatile boolean stopped;
    private Boolean serving;
    private String problem = "not checked yet";

    /**
     * @param unconfirmedFor how long the oldest message the broker has not confirmed has waited
     * @param stallLimit     from how long on that means the broker cannot be reached for writes
     */
    HealthMonitor(HealthStatusManager health, BooleanSupplier canPublish, Supplier<Duration> unconfirmedFor,
                  Duration stallLimit, BooleanSupplier receivesEvents) {
        this.health = health;
        this.canPublish = canPublish;
        this.unconfirmedFor = unconfirmedFor;
        this.stallLimit = stallLimit;
        this.receivesEvents = receivesEvents;
    }

    @Override
    public synchronized void run() {
        if (stopped) {
            return;
        }
        boolean connected = canPublish.getAsBoolean();
        Duration waiting = unconfirmedFor.get();
        boolean confirms = waiting.compareTo(stallLimit) < 0;
        boolean publish = connected && confirms;
        boolean events = receivesEvents.getAsBoolean();
        boolean now = publish && events;
        String writes = !connected ? "down" : confirms ? "up" : "up, but no confirm for " + waiting.toMillis() + " ms";
        problem = now ? null : "NOT_SERVING (broker connection for writes: " + writes
                + ", change events: " + (events ? "subscribed" : "not subscribed") + ")";
        if (serving == null || serving != now) {
            ServingStatus status = now ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
            health.setStatus("", status);
            health.setStatus(KeyValueGrpc.SERVICE_NAME, status);
            if (now) {
                log.info("health: SERVING");
            } else {
                log.warn("health: {}", problem);
            }
            serving = now;
        }
    }

    /** Whether the last check found the replica able to serve. */
    synchronized boolean serving() {
        return Boolean.TRUE.equals(serving);
    }

    /** Why the replica is not serving, as of the last check; empty while it serves (the admin port's /healthz). */
    synchronized Optional<String> problem() {
        return stopped ? Optional.of("shutting down") : Optional.ofNullable(problem);
    }

    /** No more changes: the server is shutting down and health is in its terminal state. */
    synchronized void stop() {
        stopped = true;
    }
}
