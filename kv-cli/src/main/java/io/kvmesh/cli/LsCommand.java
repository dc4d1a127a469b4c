package io.kvmesh.cli;

import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** kvctl ls: list entries in key order, following page tokens. */
@Command(name = "ls", aliases = "list", description = "List entries in key order, paging through the results.", sortOptions = false)
final class LsCommand implements Callable<Integer> {
    @ParentCommand
    Kvctl root;
    @Spec
    CommandSpec spec;

    @Option(names = {"-p", "--prefix"}, paramLabel = "PREFIX", defaultValue = "", description = "only keys starting with PREFIX")
    String prefix;
    @Option(names = {"-n", "--limit"}, paramLabel = "N", defaultValue = "0", description = "at most N entries (0 = all). Default: ${DEFAULT-VALUE}")
    int limit;
    @Option(names = "--page-size", paramLabel = "N", defaultValue = "100", description = "entries per request (server caps at 1000). Default: ${DEFAULT-VALUE}")
    int pageSize;

    @Override
    public Integer call() {
        if (limit < 0) {
            throw new ParameterException(spec.commandLine(), "--limit must be >= 0");
        }
        if (pageSize < 1) {
            throw new ParameterException(spec.commandLine(), "--page-size must be >= 1");
        }
        PrintWriter out = spec.commandLine().getOut();
        Output.Table table = Output.Table.of("KEY", "VERSION", "UPDATED", "VALUE");
        int shown = 0;
        int pages = 0;
        String token = "";
        boolean more;
        do {
            int want = limit == 0 ? pageSize : Math.min(pageSize, limit - shown);
            ListResponse page = root.blocking().list(ListRequest.newBuilder()
                    .setPrefix(prefix).setPageSize(want).setPageToken(token).build());
            pages++;
            for (Entry e : page.getDataList()) {
                if (limit > 0 && shown >= limit) {
                    break;
                }
                shown++;
                if (root.json()) {
                    out.println(Output.json(e));
                } else {
                    table.row(Output.cell(e.getKey(), 0), Long.toString(e.getVersion()),
                            Output.time(e.hasUpdateTime(), e.getUpdateTime()), Output.cell(e.getValue(), Output.TABLE_VALUE_WIDTH));
                }
            }
            if (root.json()) {
                out.flush();
            }
            token = page.getNextPageToken();
            more = !token.isEmpty();
        } while (more && (limit == 0 || shown < limit));
        if (!root.json()) {
            if (shown > 0) {
                table.print(out);
            }
            out.println(shown + (shown == 1 ? " entry" : " entries") + (prefix.isEmpty() ? "" : " under '" + prefix + "'")
                    + " (" + pages + (pages == 1 ? " page" : " pages") + ")" + (more ? "; more with --limit 0" : ""));
            out.flush();
        }
        return ExitCodes.OK;
    }
}
