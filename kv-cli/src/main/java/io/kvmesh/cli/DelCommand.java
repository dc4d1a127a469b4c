package io.kvmesh.cli;

import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

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
    @Mixin
    WriteOptions write;

    @Override
    public Integer call() {
        write.check(spec);
        DeleteRequest.Builder req = DeleteRequest.newBuilder().setKey(key).setMode(write.mode());
        if (write.expectVersion != null) {
            req.setExpectedVersion(write.expectVersion);
        }
        req.setRequestId(write.requestId());
        DeleteResponse resp = root.blocking().delete(req.build());
        WriteOptions.print(root, spec, resp, key, resp.getStatus(), resp.getOperationId(), resp.getVersion());
        return ExitCodes.OK;
    }
}
