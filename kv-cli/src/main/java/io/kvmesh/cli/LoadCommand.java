package io.kvmesh.cli;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutManyResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WriteMode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** kvctl load: bulk import of a JSON-lines file, in PutMany calls pipelined with bounded concurrency. */
@Command(name = "load", sortOptions = false,
        description = {"Bulk import from a JSON-lines file, one {\"key\":…,\"value\":…} a line ('-' = stdin).",
                "Lines go in PutMany calls of --batch puts (at most 1 MiB), at most --concurrency calls in flight over",
                "one connection; each line has its own request id, so a call that fails is retried line by line",
                "without applying anything twice, and a malformed put fails only its own line. A progress bar goes",
                "to stderr and a summary (lines, written, failed, elapsed, rate) to stdout. Exit 0 when every line",
                "was written, else the code of the first failure (2 for a malformed line)."})
final class LoadCommand implements java.util.concurrent.Callable<Integer> {
    private static final int MAX_REPORTED = 5;
    private static final int MAX_BATCH = 1_000;
    private static final int MAX_BATCH_BYTES = 1 << 20;
    private static final Pattern PUT_INDEX = Pattern.compile("^puts\\[(\\d+)\\]: (.*)$", Pattern.DOTALL);

    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE", description = "JSON-lines file, or '-' for stdin")
    String file;
    @Option(names = "--batch", paramLabel = "N", defaultValue = "250",
            description = "puts per call, 1 to " + MAX_BATCH + " (1: one Put call per line). Default: ${DEFAULT-VALUE}")
    int batch;
    @Option(names = "--concurrency", paramLabel = "N", defaultValue = "8", description = "calls in flight at most. Default: ${DEFAULT-VALUE}")
    int concurrency;
    @Option(names = "--sync", description = "SYNC puts: each answers once applied (slower)")
    boolean sync;
    @Option(names = "--no-progress", description = "no progress bar on stderr")
    boolean noProgress;

    private record Line(long no, PutRequest put) {
    }

    private final AtomicLong written = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicInteger reported = new AtomicInteger();
    private final AtomicReference<Integer> firstFailure = new AtomicReference<>();
    private Progress progress;
    private KeyValueGrpc.KeyValueStub stub;

    @Override
    public Integer call() throws Exception {
        if (concurrency < 1) {
            throw new ParameterException(spec.commandLine(), "--concurrency must be >= 1");
        }
        if (batch < 1 || batch > MAX_BATCH) {
            throw new ParameterException(spec.commandLine(), "--batch must be 1 to " + MAX_BATCH);
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        long total = -1;
        BufferedReader reader;
        if ("-".equals(file)) {
            reader = new BufferedReader(new InputStreamReader(root.in(), StandardCharsets.UTF_8));
        } else {
            Path path = Path.of(file);
            try (var lines = Files.lines(path, StandardCharsets.UTF_8)) {
                total = lines.filter(l -> !l.isBlank()).count();
            } catch (NoSuchFileException e) {
                throw new ParameterException(spec.commandLine(), "no such file: " + file);
            } catch (UncheckedIOException e) {
                throw new ParameterException(spec.commandLine(), "cannot read " + file + ": " + e.getCause().getMessage());
            }
            reader = Files.newBufferedReader(path, StandardCharsets.UTF_8);
        }

        AtomicLong lines = new AtomicLong();
        Semaphore inFlight = new Semaphore(concurrency);
        stub = root.async();
        long t0 = System.nanoTime();
        progress = new Progress(err, total, root.stderrIsTerminal());
        ScheduledExecutorService ticker = null;
        if (!noProgress) {
            ticker = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "kvctl-progress");
                t.setDaemon(true);
                return t;
            });
            ticker.scheduleAtFixedRate(() -> progress.render(written.get() + failed.get(), System.nanoTime() - t0, false),
                    200, root.stderrIsTerminal() ? 200 : 1000, TimeUnit.MILLISECONDS);
        }
        String runId = "kvctl-load-" + UUID.randomUUID();
        try (reader) {
            String line;
            long lineNo = 0;
            List<Line> pending = new ArrayList<>();
            int pendingBytes = 0;
            while ((line = reader.readLine()) != null) {
                lineNo++;
                if (line.isBlank()) {
                    continue;
                }
                lines.incrementAndGet();
                PutRequest req;
                try {
                    // one request id per line, so a retried call (or line) applies each line once
                    req = parse(line, sync).toBuilder().setRequestId(runId + ":" + lineNo).build();
                } catch (IllegalArgumentException e) {
                    fail(ExitCodes.USAGE, "line " + lineNo + ": " + e.getMessage());
                    continue;
                }
                int size = req.getSerializedSize();
                if (!pending.isEmpty() && pendingBytes + size > MAX_BATCH_BYTES) {
                    inFlight.acquire();
                    send(List.copyOf(pending), inFlight::release);
                    pending.clear();
                    pendingBytes = 0;
                }
                pending.add(new Line(lineNo, req));
                pendingBytes += size;
                if (pending.size() == batch) {
                    inFlight.acquire();
                    send(List.copyOf(pending), inFlight::release);
                    pending.clear();
                    pendingBytes = 0;
                }
            }
            if (!pending.isEmpty()) {
                inFlight.acquire();
                send(List.copyOf(pending), inFlight::release);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            inFlight.acquire(concurrency);   // every call answered
            if (ticker != null) {
                ticker.shutdownNow();
            }
        }
        long elapsedNanos = System.nanoTime() - t0;
        if (!noProgress) {
            progress.render(written.get() + failed.get(), elapsedNanos, true);
        }
        double seconds = elapsedNanos / 1e9;
        double rate = seconds > 0 ? written.get() / seconds : 0;
        if (root.json()) {
            JsonObject o = new JsonObject();
            o.addProperty("lines", lines.get());
            o.addProperty("written", written.get());
            o.addProperty("failed", failed.get());
            o.addProperty("elapsedSeconds", Math.round(seconds * 1000) / 1000.0);
            o.addProperty("ratePerSecond", Math.round(rate * 10) / 10.0);
            out.println(o);
        } else {
            Output.Table.fields()
                    .row("lines", Long.toString(lines.get()))
                    .row("written", Long.toString(written.get()))
                    .row("failed", Long.toString(failed.get()))
                    .row("elapsed", String.format(Locale.ROOT, "%.2fs", seconds))
                    .row("rate", String.format(Locale.ROOT, "%.0f puts/s", rate))
                    .print(out);
        }
        out.flush();
        Integer code = firstFailure.get();
        return code == null ? ExitCodes.OK : code;
    }

    /**
     * Writes {@code lines}, then runs {@code done} once. One line goes as a Put; more as one PutMany. A PutMany refused
     * for one malformed put fails that line and sends the others again; one that fails otherwise (the broker or a
     * replica away, a deadline) is retried line by line, which each line's request id makes safe.
     */
    private void send(List<Line> lines, Runnable done) {
        if (lines.size() == 1) {
            sendOne(lines.getFirst(), done);
            return;
        }
        PutManyRequest.Builder req = PutManyRequest.newBuilder();
        lines.forEach(l -> req.addPuts(l.put()));
        stub.withDeadlineAfter(root.timeout().toMillis(), TimeUnit.MILLISECONDS).putMany(req.build(),
                new StreamObserver<>() {
                    @Override
                    public void onNext(PutManyResponse value) {
                        written.addAndGet(value.getResultsCount());
                    }

                    @Override
                    public void onError(Throwable t) {
                        Status s = Status.fromThrowable(t);
                        Matcher m = s.getDescription() == null ? null : PUT_INDEX.matcher(s.getDescription());
                        if (s.getCode() == Status.Code.INVALID_ARGUMENT && m != null && m.matches()
                                && Integer.parseInt(m.group(1)) < lines.size()) {
                            int bad = Integer.parseInt(m.group(1));
                            Line l = lines.get(bad);
                            fail(ExitCodes.of(s.getCode()), "line " + l.no() + " (key " + l.put().getKey() + "): "
                                    + s.getCode() + ": " + m.group(2));
                            List<Line> rest = new ArrayList<>(lines);
                            rest.remove(bad);
                            if (rest.isEmpty()) {
                                done.run();
                            } else {
                                send(rest, done);
                            }
                            return;
                        }
                        AtomicInteger left = new AtomicInteger(lines.size());
                        for (Line l : lines) {
                            sendOne(l, () -> {
                                if (left.decrementAndGet() == 0) {
                                    done.run();
                                }
                            });
                        }
                    }

                    @Override
                    public void onCompleted() {
                        done.run();
                    }
                });
    }

    private void sendOne(Line line, Runnable done) {
        stub.withDeadlineAfter(root.timeout().toMillis(), TimeUnit.MILLISECONDS).put(line.put(), new StreamObserver<>() {
            @Override
            public void onNext(PutResponse value) {
                written.incrementAndGet();
            }

            @Override
            public void onError(Throwable t) {
                Status s = Status.fromThrowable(t);
                fail(ExitCodes.of(s.getCode()), "line " + line.no() + " (key " + line.put().getKey() + "): "
                        + s.getCode() + (s.getDescription() == null ? "" : ": " + s.getDescription()));
                done.run();
            }

            @Override
            public void onCompleted() {
                done.run();
            }
        });
    }

    private void fail(int code, String message) {
        failed.incrementAndGet();
        firstFailure.compareAndSet(null, code);
        int n = reported.incrementAndGet();
        if (n <= MAX_REPORTED) {
            progress.message("kvctl load: " + message);
        } else if (n == MAX_REPORTED + 1) {
            progress.message("kvctl load: further failures are only counted");
        }
    }

    /** The put for one JSON line {"key":"…","value":"…"}; IllegalArgumentException when the line is not that. */
    static PutRequest parse(String line, boolean sync) {
        JsonElement e;
        try {
            e = JsonParser.parseString(line);
        } catch (RuntimeException ex) {
            throw new IllegalArgumentException("not JSON");
        }
        if (!e.isJsonObject()) {
            throw new IllegalArgumentException("not a JSON object");
        }
        JsonObject o = e.getAsJsonObject();
        JsonElement key = o.get("key");
        JsonElement value = o.get("value");
        if (key == null || !key.isJsonPrimitive() || key.getAsString().isEmpty()) {
            throw new IllegalArgumentException("\"key\" must be a non-empty string");
        }
        if (value == null || value.isJsonNull() || !value.isJsonPrimitive()) {
            throw new IllegalArgumentException("\"value\" must be a string");
        }
        return PutRequest.newBuilder().setKey(key.getAsString()).setValue(value.getAsString())
                .setMode(sync ? WriteMode.SYNC : WriteMode.ASYNC).build();
    }
}
