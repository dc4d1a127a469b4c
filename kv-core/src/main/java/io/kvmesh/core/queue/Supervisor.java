package io.kvmesh.core.queue;

import io.kvmesh.core.retry.Backoff;
import org.slf4j.Logger;

import java.time.Duration;
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
    private static final Backoff BACKOFF = Backoff.of(200, 5_000);

    /** One pass: (re)connect whatever is not connected. */
    @FunctionalInterface
    public interface Step {
        void run() throws Exception;
    }

    private Supervisor() {
    }

    /** Runs until {@code running} turns false or the thread is interrupted. */
    public static void loop(String what, BooleanSupplier running, Step step, Logger log) {
        Backoff.Delays backoff = BACKOFF.delays();
        try {
            while (running.getAsBoolean()) {
                try {
                    step.run();
                    backoff.reset();
                    TimeUnit.MILLISECONDS.sleep(TICK_MILLIS);
                } catch (InterruptedException e) {
                    throw e;
                } catch (Exception | Error e) {
                    if (!running.getAsBoolean()) {
                        return;
                    }
                    Duration pause = backoff.next();
                    log.warn("{} unavailable, retrying in {} ms: {}", what, pause.toMillis(), e.toString());
                    Thread.sleep(pause);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
