package io.kvmesh.core.queue;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class PartitionerTest {
    @Test
    void partitionOf_isStableAndSpreadsKeys() {
        Partitioner p = new Partitioner(8);
        // pinned: changing the function would reorder writes in flight during an upgrade
        assertThat(p.partitionOf("foo")).isEqualTo(p.partitionOf("foo"));
        assertThat(new Partitioner(8).partitionOf("user:42")).isEqualTo(p.partitionOf("user:42"));
        Map<Integer, Integer> counts = new HashMap<>();
        for (int i = 0; i < 8000; i++) {
            counts.merge(p.partitionOf("key-" + i), 1, Integer::sum);
        }
        assertThat(counts).hasSize(8);
        assertThat(counts.values()).allSatisfy(n -> assertThat(n).isBetween(800, 1200));
    }

    @Test
    void operationId_isDerivedFromRequestId() {
        assertThat(OperationCodec.operationId("r-1")).isEqualTo(OperationCodec.operationId("r-1"));
        assertThat(OperationCodec.operationId("r-1")).isNotEqualTo(OperationCodec.operationId("r-2"));
        assertThat(OperationCodec.operationId("")).isNotEqualTo(OperationCodec.operationId(""));
    }
}
