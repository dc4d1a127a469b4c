package io.kvmesh.cli;

import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetOperationResponse;
import io.kvmesh.api.v1.OperationStatus;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** kvctl op: what became of a write. */
@Command(name = "op", aliases = "operation", description = "Status of a write by its operation id: PENDING, APPLIED or REJECTED.")
final class OpCommand implements Callable<Integer> {
    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "OPERATION_ID", description = "the id a put or del answered with")
    String operationId;

    @Override
    public Integer call() {
        GetOperationResponse resp = root.blocking().getOperation(
                GetOperationRequest.newBuilder().setOperationId(operationId).build());
        PrintWriter out = spec.commandLine().getOut();
        OperationStatus op = resp.getData();
        if (root.json()) {
            out.println(Output.json(resp));
            out.flush();
        } else {
            Output.Table.fields()
                    .row("operation", op.getOperationId())
                    .row("state", op.getState().name())
                    .row("key", op.getKey().isEmpty() ? "-" : Output.cell(op.getKey(), 0))
                    .row("kind", op.getKind().isEmpty() ? "-" : op.getKind())
                    .row("version", op.getVersion() == 0 ? "-" : Long.toString(op.getVersion()))
                    .row("reason", op.getReason().isEmpty() ? "-" : op.getReason())
                    .row("applied", Output.time(op.hasApplyTime(), op.getApplyTime()))
                    .print(out);
        }
        return ExitCodes.OK;
    }
}
