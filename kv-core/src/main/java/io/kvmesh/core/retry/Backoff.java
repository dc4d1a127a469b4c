package io.kvmesh.core.retry;

import java.time.Duration;
import java.util.Objects;

/**
 * The one back-off policy of kvmesh's retry loops (database at start-up and while applying, broker reconnects, Redis
 * reconnects): the first retry waits {@code first}, each further one twice as long, never more than {@code max}; a
 * success starts again from {@code first}. A policy is immutable and shared; each loop takes its own {@link #delays()}.
 * (resilience4j-retry was the alternative: its retries end after a number of attempts or on a predicate, while these
 * loops run for as long as the process does and decide per failure themselves, so a policy object is all they need.)
 *
 * @param first the pause before the first retry
 * @param max   the longest pause
 */
public record Backoff(Duration first, Duration max) {

    public Backoff {
        Objects.requireNonNull(first, "first");
        Objects.requireNonNull(max, "max");
        if (first.isNegative() || first.isZero()) {
            throw new IllegalArgumentException("first back-off must be positive: " + first);
        }
        if (max.compareTo(first) < 0) {
            throw new IllegalArgumentException("max back-off " + max + " is shorter than the first " + first);
        }
    }

    public static Backoff of(long firstMillis, long maxMillis) {
        return new Backoff(Duration.ofMillis(firstMillis), Duration.ofMillis(maxMillis));
    }

    /** The pause before retry number {@code retry} (1 = the first retry after a failure). */
    public Duration delay(int retry) {
        if (retry < 1) {
            throw new IllegalArgumentException("retry counts from 1: " + retry);
        }
        // doubling 62 times overflows a long of nanoseconds long before; stop doubling once max is reached
        Duration d = first;
        for (int i = 1; i < retry && d.compareTo(max) < 0; i++) {
            d = d.multipliedBy(2);
        }
        return d.compareTo(max) > 0 ? max : d;
    }

    /** A fresh sequence of pauses for one loop. */
    public Delays delays() {
        return new Delays(this);
    }

    /** The pauses of one retry loop, in order; not thread-safe (a loop runs on one thread). */
    public static final class Delays {
        private final Backoff policy;
        private int retries;

        private Delays(Backoff policy) {
            this.policy = policy;
        }

        /** The pause before the next retry; each call counts one more failure. */
        public Duration next() {
            retries = retries == Integer.MAX_VALUE ? retries : retries + 1;
            return policy.delay(retries);
        }

        /** Waits the next pause ({@link #next()}); an interrupt ends the wait and is thrown. */
        public Duration sleep() throws InterruptedException {
            Duration d = next();
            Thread.sleep(d);
            return d;
        }

        /** After a success: the next failure waits {@code first} again. */
        public void reset() {
            retries = 0;
        }

        /** Failures since the last success. */
        public int retries() {
            return retries;
        }
    }
}
