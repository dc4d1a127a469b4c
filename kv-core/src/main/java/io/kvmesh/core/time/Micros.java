package io.kvmesh.core.time;

import java.time.Instant;

/**
 * The one conversion between {@link Instant} and the microseconds since the epoch that the queue messages and change
 * events carry ({@code *_micros} fields, where 0 means unset).
 */
public final class Micros {
    private Micros() {
    }

    /** Microseconds since the epoch (floor: an instant before the epoch rounds down); 0 for {@code null}. */
    public static long of(Instant t) {
        if (t == null) {
            return 0;
        }
        return Math.addExact(Math.multiplyExact(t.getEpochSecond(), 1_000_000L), t.getNano() / 1_000);
    }

    /** The instant {@code micros} microseconds after the epoch. */
    public static Instant toInstant(long micros) {
        return Instant.ofEpochSecond(Math.floorDiv(micros, 1_000_000L), Math.floorMod(micros, 1_000_000L) * 1_000L);
    }

    /** Like {@link #toInstant}, but {@code null} for 0 (an unset field). */
    public static Instant toInstantOrNull(long micros) {
        return micros == 0 ? null : toInstant(micros);
    }
}
