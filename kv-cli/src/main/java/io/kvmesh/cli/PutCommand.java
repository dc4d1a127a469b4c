package io.kvmesh.cli;

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

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Callable;

/** kvctl put: write a value under a key. */
@Command(name = "put", description = "Write VALUE under KEY (queued, or applied with --sync).", sortOptions = false)
final class PutCommand implements Callable<Integer> {
    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "KEY", description = "the key")
    String key;
    @Parameters(index = "1", paramLabel = "VALUE", description = "the value; '-' reads it from stdin")
    String value;
    @Option(names = "--sync", description = "answer once applied (read-your-writes), with the new version")
    boolean sync;
    @Option(names = "--ttl", paramLabel = "DURATION", converter = Durations.class,
            description = "expire the entry this long after it applies (30s, 5m, 1h)")
    Duration ttl;
    @Option(names = "--expect-version", paramLabel = "N",
            description = "write only if the key's version is N (0 = only if the key does not exist)")
    Long expectVersion;
    @Option(names = "--request-id", paramLabel = "ID", description = "idempotency key: retries with the same id apply once")
    String requestId;

    @Override
    public Integer call() {
        if (expectVersion != null && expectVersion < 0) {
            throw new ParameterException(spec.commandLine(), "--expect-version must be >= 0");
        }
        if (ttl != null && (ttl.isNegative() || ttl.isZero())) {
            throw new ParameterException(spec.commandLine(), "--ttl must be positive");
        }
        PutRequest.Builder req = PutRequest.newBuilder().setKey(key).setValue(readValue())
                .setMode(sync ? WriteMode.SYNC : WriteMode.ASYNC);
        if (ttl != null) {
            req.setTtl(com.google.protobuf.Duration.newBuilder().setSeconds(ttl.getSeconds()).setNanos(ttl.getNano()));
        }
        if (expectVersion != null) {
            req.setExpectedVersion(expectVersion);
        }
        if (requestId != null) {
            req.setRequestId(requestId);
        }
        PutResponse resp = root.blocking().put(req.build());
        PrintWriter out = spec.commandLine().getOut();
        if (root.json()) {
            out.println(Output.json(resp));
            out.flush();
        } else {
            Output.Table.fields()
                    .row("key", Output.cell(key, 0))
                    .row("status", resp.getStatus())
                    .row("operation", resp.getOperationId())
                    .row("version", resp.getVersion() == 0 ? "- (queued; see: kvctl op " + resp.getOperationId() + ")"
                            : Long.toString(resp.getVersion()))
                    .print(out);
        }
        return ExitCodes.OK;
    }

    private String readValue() {
        if (!"-".equals(value)) {
            return value;
        }
        try {
            return new String(root.in().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
