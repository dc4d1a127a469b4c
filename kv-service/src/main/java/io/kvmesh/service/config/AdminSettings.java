package io.kvmesh.service.config;

import io.kvmesh.core.config.Env;

/**
 * The replica's admin HTTP endpoint (GET /healthz, GET /metrics) and the name its meters carry.
 *
 * @param bind     address the endpoint binds: 127.0.0.1 natively (operators and Prometheus on the same machine),
 *                 0.0.0.0 in a container (the Prometheus of the container network)
 * @param port     its port; 0 = any free port (tests), -1 = no admin endpoint at all
 * @param instance the {@code instance} tag of every meter, e.g. kv-service-1
 */
public record AdminSettings(String bind, int port, String instance) {
    /** No admin endpoint (in-process tests). */
    public static final AdminSettings OFF = new AdminSettings("127.0.0.1", -1, "kv-service");

    public static AdminSettings from(Env env) {
        return new AdminSettings(
                env.string("KVMESH_ADMIN_BIND", "127.0.0.1"),
                env.integer("KVMESH_ADMIN_PORT", 9290, -1, 65535),
                env.string("KVMESH_INSTANCE", env.string("HOSTNAME", "kv-service")));
    }

    public boolean enabled() {
        return port >= 0;
    }
}
