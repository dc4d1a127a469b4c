package io.kvmesh.cli;

import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** kvctl get: read one key. */
@Command(name = "get", description = "Read KEY: value, version, source and timestamps (exit 1 if missing).")
final class GetCommand implements Callable<Integer> {
    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "KEY", description = "the key")
    String key;
    @Option(names = "--value", description = "print only the value, as stored")
    boolean valueOnly;

    @Override
    public Integer call() {
        GetResponse resp = root.blocking().get(GetRequest.newBuilder().setKey(key).build());
        PrintWriter out = spec.commandLine().getOut();
        Entry e = resp.getData();
        if (valueOnly) {
            out.println(e.getValue());
        } else if (root.json()) {
            out.println(Output.json(resp));
        } else {
            Output.Table.fields()
                    .row("key", Output.cell(e.getKey(), 0))
                    .row("value", Output.cell(e.getValue(), 0))
                    .row("version", Long.toString(e.getVersion()))
                    .row("source", resp.getSource())
                    .row("created", Output.time(e.hasCreateTime(), e.getCreateTime()))
                    .row("updated", Output.time(e.hasUpdateTime(), e.getUpdateTime()))
                    .row("expires", Output.time(e.hasExpireTime(), e.getExpireTime()))
                    .print(out);
        }
        out.flush();
        return ExitCodes.OK;
    }
}
