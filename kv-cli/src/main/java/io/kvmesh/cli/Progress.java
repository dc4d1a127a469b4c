package io.kvmesh.cli;

import java.io.PrintWriter;
import java.util.Locale;

/** A progress bar on stderr: redrawn in place on a terminal, a plain line a second otherwise (logs, CI). */
final class Progress {
    private static final int BAR = 30;
    private final PrintWriter err;
    private final long total;
    private final boolean terminal;
    private boolean drawn;

    Progress(PrintWriter err, long total, boolean terminal) {
        this.err = err;
        this.total = total;
        this.terminal = terminal;
    }

    /** Draws the state after {@code done} lines; {@code last} ends the bar with a newline. */
    synchronized void render(long done, long elapsedNanos, boolean last) {
        double seconds = Math.max(elapsedNanos / 1e9, 1e-9);
        double rate = done / seconds;
        String text = line(done, total, rate);
        if (terminal) {
            err.print("\r" + text + "\u001b[K" + (last ? "\n" : ""));
        } else {
            err.println(text);
        }
        err.flush();
        drawn = !last;
    }

    /** Prints a message on its own line without garbling the bar. */
    synchronized void message(String text) {
        if (terminal && drawn) {
            err.print("\r\u001b[K");
        }
        err.println(text);
        err.flush();
    }

    static String line(long done, long total, double rate) {
        if (total > 0) {
            double f = Math.min(1.0, (double) done / total);
            int full = (int) Math.round(f * BAR);
            String eta = rate > 0 && done < total ? String.format(Locale.ROOT, " eta %.0fs", (total - done) / rate) : "";
            return String.format(Locale.ROOT, "[%s%s] %3d%% %d/%d  %.0f/s%s", "#".repeat(full), ".".repeat(BAR - full),
                    Math.round(f * 100), done, total, rate, eta);
        }
        return String.format(Locale.ROOT, "%d lines  %.0f/s", done, rate);
    }
}
