package io.kvmesh.cli;

import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.WriteMode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** kvctl del: remove a key. */
@Command(name = "del", aliases = "delete", description = "Delete KEY (queued, or applied with --sync).", sortOptions = false)
final class DelCommand implements Callable<Integer> {
    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "KEY", description = "the key")
    String key;
    @Option(names = "--sync", description = "answer once applied")
    boolean sync;
    @Option(names = "--expect-version", paramLabel = "N", description = "delete only if the key's version is N")
    Long expectVersion;
    @Option(names = "--request-id", paramLabel = "ID", description = "idempotency key: retries with the same id apply once")
    String requestId;

    @Override
    public Integer call() {
        if (expectVersion != null && expectVersion < 0) {
            throw new ParameterException(spec.commandLine(), "--expect-version must be >= 0");
        }
        DeleteRequest.Builder req = DeleteRequest.newBuilder().setKey(key).setMode(sync ? WriteMode.SYNC : WriteMode.ASYNC);
        if (expectVersion != null) {
            req.setExpectedVersion(expectVersion);
        }
        if (requestId != null) {
            req.setRequestId(requestId);
        }
        DeleteResponse resp = root.blocking().delete(req.build());
        PrintWriter out = spec.commandLine().getOut();
        if (root.json()) {
            out.println(Output.json(resp));
            out.flush();
        } else {
            Output.Table.fields()
                    .row("key", Output.cell(key, 0))
                    .row("status", resp.getStatus())
                    .row("operation", resp.getOperationId())
                    .row("version", resp.getVersion() == 0 ? "-" : Long.toString(resp.getVersion()))
                    .print(out);
        }
        return ExitCodes.OK;
    }
}
