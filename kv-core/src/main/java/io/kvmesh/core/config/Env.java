package io.kvmesh.core.config;

import java.time.Duration;
import java.util.Map;

/** Typed, validated reads of {@code KVMESH_*} settings from an environment map. */
public final class Env {
    private final Map<String, String> vars;

    public Env(Map<String, String> vars) {
        this.vars = Map.copyOf(vars);
    }

    /** The process environment. */
    public static Env system() {
        return new Env(System.getenv());
    }

    public String string(String name, String fallback) {
        String v = vars.get(name);
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    /**
     * A setting with no default, such as a password: a missing one ends start-up with a message that says where the
     * value comes from, never a fallback.
     */
    public String required(String name, String whereFrom) {
        String v = vars.get(name);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException(name + " is not set: " + whereFrom);
        }
        return v.trim();
    }

    public int integer(String name, int fallback, int min, int max) {
        String v = vars.get(name);
        if (v == null || v.isBlank()) {
            return fallback;
        }
        int parsed;
        try {
            parsed = Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + v + "'");
        }
        if (parsed < min || parsed > max) {
            throw new IllegalArgumentException(name + " must be between " + min + " and " + max + ", got " + parsed);
        }
        return parsed;
    }

    /** A duration in milliseconds. */
    public Duration millis(String name, long fallbackMillis) {
        return Duration.ofMillis(integer(name, (int) fallbackMillis, 0, Integer.MAX_VALUE));
    }
}
