package io.kvmesh.core.metrics;

import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

/**
 * The one place a kvmesh process makes its Prometheus registry: every meter carries {@code application} (kv-service,
 * kv-consumer) and {@code instance} (KVMESH_INSTANCE, e.g. kv-service-1), and the JVM's own meters (memory, GC,
 * threads, CPU, uptime) are bound. Served by {@link io.kvmesh.core.admin.AdminHttpServer} at {@code /metrics}.
 */
public final class Metrics {
    private Metrics() {
    }

    public static PrometheusMeterRegistry newRegistry(String application, String instance) {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        registry.config().commonTags("application", application, "instance", instance);
        new ClassLoaderMetrics().bindTo(registry);
        new JvmMemoryMetrics().bindTo(registry);
        new JvmGcMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        return registry;
    }
}
