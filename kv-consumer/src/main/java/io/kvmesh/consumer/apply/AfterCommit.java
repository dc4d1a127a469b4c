package io.kvmesh.consumer.apply;

import io.kvmesh.queue.v1.Operation;

import java.util.List;

/**
 * Called after a batch committed and before it is acknowledged. Production uses {@link #NONE}; fault-injection tests
 * use it to kill a consumer exactly between commit and ack.
 */
@FunctionalInterface
public interface AfterCommit {
    AfterCommit NONE = ops -> { };

    void committed(List<Operation> ops);
}
