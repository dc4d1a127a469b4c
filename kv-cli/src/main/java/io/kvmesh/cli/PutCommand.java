package io.kvmesh.cli;

import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

import java.io.IOException;
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
    @Mixin
    WriteOptions write;
    @Option(names = "--ttl", paramLabel = "DURATION", converter = Durations.class,
            description = "expire the entry this long after it applies (30s, 5m, 1h)")
    Duration ttl;

    @Override
    public Integer call() {
        write.check(spec);
        if (ttl != null && (ttl.isNegative() || ttl.isZero())) {
            throw new ParameterException(spec.commandLine(), "--ttl must be positive");
        }
        PutRequest.Builder req = PutRequest.newBuilder().setKey(key).setValue(readValue())
                .setMode(write.mode());
        if (ttl != null) {
            req.setTtl(com.google.protobuf.Duration.newBuilder().setSeconds(ttl.getSeconds()).setNanos(ttl.getNano()));
        }
        if (write.expectVersion != null) {
            req.setExpectedVersion(write.expectVersion);
        }
        req.setRequestId(write.requestId());
        PutResponse resp = root.blocking().put(req.build());
        WriteOptions.print(root, spec, resp, key, resp.getStatus(), resp.getOperationId(), resp.getVersion());
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
