package io.kvmesh.core.queue;

import org.slf4j.Logger;

import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * The reconnect loop of the processes' broker clients: runs a check-and-repair step every 250 ms while running; when
 * it fails (broker down), logs and retries with exponential back-off up to 5 s. Nothing a step throws ends the loop
 * (an Error included: a loop that died silently would leave the process looking alive but deaf); only an interrupt
 * or {@code running} turning false does.
 */
public final class Supervisor {
    private static final long TICK_MILLIS = 250;
    private static final long FIRST_BACKOFF_MILLIS = 200;
    private static final long MAX_BACKOFF_MILLIS = 5_000;

    /** One pass: (re)connect whatever is not connected. */
    @FunctionalInterface
    public interface Step {
        void run() throws Exception;
    }

    private Supervisor() {
    }

    /** Runs until {@code running} turns false or the thread is interrupted. */
    public static void loop(String what, BooleanSupplier running, Step step, Logger log) {
        long backoff = FIRST_BACKOFF_MILLIS;
        try {
            while (running.getAsBoolean()) {
                try {
                    step.run();
                    backoff = FIRST_BACKOFF_MILLIS;
                    TimeUnit.MILLISECONDS.sleep(TICK_MILLIS);
                } catch (InterruptedException e) {
                    throw e;
                } catch (Exception | Error e) {
                    if (!running.getAsBoolean()) {
                        return;
                    }
                    log.warn("{} unavailable, retrying in {} ms: {}", what, backoff, e.toString());
                    TimeUnit.MILLISECONDS.sleep(backoff);
                    backoff = Math.min(backoff * 2, MAX_BACKOFF_MILLIS);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
