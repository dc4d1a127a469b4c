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
        assertThat(OperationCodec.operationId("r-1", 1)).isEqualTo(OperationCodec.operationId("r-1", 2));
        assertThat(OperationCodec.operationId("r-1", 1)).isNotEqualTo(OperationCodec.operationId("r-2", 1));
        assertThat(OperationCodec.operationId("", 1)).isNotEqualTo(OperationCodec.operationId("", 1));
    }

    @Test
    void operationIdWithoutRequestId_isTimeOrdered_andCarriesItsAcceptTime() {
        long t = 1_764_000_000_123L;
        String id = OperationCodec.operationId("", t);
        assertThat(java.util.UUID.fromString(id).version()).isEqualTo(7);
        assertThat(OperationCodec.acceptMillis(id)).hasValue(t);
        assertThat(OperationCodec.operationId("", t + 1)).isGreaterThan(id);
        assertThat(OperationCodec.acceptMillis(OperationCodec.operationId("r-1", t))).isEmpty();
        assertThat(OperationCodec.acceptMillis("no-such-operation")).isEmpty();
    }
}
