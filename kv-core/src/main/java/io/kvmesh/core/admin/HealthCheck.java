package io.kvmesh.core.admin;

import java.util.Optional;

/** One health check of the process: empty when healthy, else a short reason for the operator. */
@FunctionalInterface
public interface HealthCheck {
    Optional<String> problem();
}
