package io.kvmesh.cli;

import com.google.protobuf.MessageOrBuilder;
import io.kvmesh.api.v1.WriteMode;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;

import java.io.PrintWriter;
import java.util.UUID;

/** The options every write takes (put and del share them as a picocli mixin), and how a write's answer is printed. */
final class WriteOptions {
    @Option(names = "--sync", description = "answer once applied (read-your-writes), with the new version")
    boolean sync;
    @Option(names = {"--expected-version", "--expect-version"}, paramLabel = "N",
            description = "write only if the key's version is N (0 = only if the key does not exist); the REST and gRPC"
                    + " field expectedVersion (--expect-version is an alias)")
    Long expectVersion;
    @Option(names = "--request-id", paramLabel = "ID",
            description = "idempotency key: retries with the same id apply once (default: a new random id, so kvctl's"
                    + " own retries after a lost answer never apply a write twice)")
    String requestId;

    /** The request id to send: the given one, else a new random one (every write carries one). */
    String requestId() {
        if (requestId == null) {
            requestId = "kvctl-" + UUID.randomUUID();
        }
        return requestId;
    }

    WriteMode mode() {
        return sync ? WriteMode.SYNC : WriteMode.ASYNC;
    }

    void check(CommandSpec spec) {
        if (expectVersion != null && expectVersion < 0) {
            throw new ParameterException(spec.commandLine(), "--expected-version must be >= 0");
        }
    }

    /** Prints a write's answer: one JSON line, or a table whose version row says how to follow a queued write. */
    static void print(Kvctl root, CommandSpec spec, MessageOrBuilder response, String key, String status,
                      String operationId, long version) {
        PrintWriter out = spec.commandLine().getOut();
        if (root.json()) {
            out.println(Output.json(response));
            out.flush();
            return;
        }
        Output.Table.fields()
                .row("key", Output.cell(key, 0))
                .row("status", status)
                .row("operation", operationId)
                .row("version", version == 0 ? "- (queued; see: kvctl op " + operationId + ")" : Long.toString(version))
                .print(out);
    }
}
