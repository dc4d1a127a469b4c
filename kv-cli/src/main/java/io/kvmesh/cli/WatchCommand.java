package io.kvmesh.cli;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.Iterator;
import java.util.concurrent.Callable;

/** kvctl watch: print change events as they happen. */
@Command(name = "watch", description = "Print PUT / DELETE / EXPIRE events under a prefix as they apply, until Ctrl-C or --count.",
        sortOptions = false)
final class WatchCommand implements Callable<Integer> {
    static final String LINE = "%-24s  %-6s  %-7s  %-20s%s";

    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Option(names = {"-p", "--prefix"}, paramLabel = "PREFIX", defaultValue = "", description = "only keys starting with PREFIX")
    String prefix;
    @Option(names = "--start-version", paramLabel = "V", defaultValue = "0",
            description = "first replay the current state of keys whose version is >= V, then live events (0 = live only)")
    long startVersion;
    @Option(names = {"-c", "--count"}, paramLabel = "N", defaultValue = "0", description = "stop after N events (0 = until Ctrl-C)")
    long count;

    @Override
    public Integer call() {
        if (startVersion < 0 || count < 0) {
            throw new ParameterException(spec.commandLine(), "--start-version and --count must be >= 0");
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (!root.json()) {
            err.println("watching " + (prefix.isEmpty() ? "every key" : "keys under '" + prefix + "'") + " on " + root.endpoint
                    + (count > 0 ? " for " + count + " event(s)" : "; Ctrl-C to stop"));
            err.flush();
            out.println(String.format(LINE, "TIME", "TYPE", "VERSION", "KEY", "  VALUE").stripTrailing());
            out.flush();
        }
        // No deadline: a watch lasts until stopped. Cancelling the context ends the call after --count events.
        Context.CancellableContext ctx = Context.current().withCancellation();
        long seen = 0;
        try {
            Iterator<WatchResponse> events = ctx.call(() -> KeyValueGrpc.newBlockingStub(root.channel())
                    .watch(WatchRequest.newBuilder().setPrefix(prefix).setStartVersion(startVersion).build()));
            while (events.hasNext()) {
                print(out, events.next());
                seen++;
                if (count > 0 && seen >= count) {
                    break;
                }
            }
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() != Status.Code.CANCELLED || !ctx.isCancelled()) {
                throw e;
            }
        } catch (Exception e) {
            throw new IllegalStateException(e);
        } finally {
            ctx.cancel(null);
        }
        return ExitCodes.OK;
    }

    private void print(PrintWriter out, WatchResponse ev) {
        if (root.json()) {
            out.println(Output.json(ev));
        } else {
            String value = ev.getType() == io.kvmesh.api.v1.EventType.PUT
                    ? "  " + Output.cell(ev.getValue(), Output.TABLE_VALUE_WIDTH) : "";
            out.println(String.format(LINE, Output.time(ev.hasTime(), ev.getTime()), ev.getType().name(),
                    Long.toString(ev.getVersion()), Output.cell(ev.getKey(), 0), value).stripTrailing());
        }
        out.flush();
    }
}
