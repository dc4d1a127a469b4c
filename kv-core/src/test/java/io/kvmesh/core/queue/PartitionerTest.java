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
    void requestOperationId_isTheSameForARetry_andDiffersForAnotherRequestUnderTheSameId() {
        assertThat(OperationCodec.requestOperationId("r-1", "h1")).isEqualTo(OperationCodec.requestOperationId("r-1", "h1"));
        assertThat(OperationCodec.requestOperationId("r-1", "h1")).isNotEqualTo(OperationCodec.requestOperationId("r-2", "h1"));
        // the case that lost an acknowledged write: one id, two different writes, once one shared operation id
        assertThat(OperationCodec.requestOperationId("r-1", "h1")).isNotEqualTo(OperationCodec.requestOperationId("r-1", "h2"));
        assertThat(OperationCodec.acceptMillis(OperationCodec.requestOperationId("r-1", "h1"))).isEmpty();
    }

    @Test
    void edgeOperationId_isTheSameForEnvoysRetries_andTimeOrdered() {
        long t = 1_764_000_000_123L;
        String id = OperationCodec.edgeOperationId("envoy-rid", t, "h1");
        assertThat(OperationCodec.edgeOperationId("envoy-rid", t, "h1")).isEqualTo(id);
        assertThat(OperationCodec.edgeOperationId("envoy-rid2", t, "h1")).isNotEqualTo(id);
        assertThat(OperationCodec.edgeOperationId("envoy-rid", t, "h2")).isNotEqualTo(id);
        assertThat(java.util.UUID.fromString(id).version()).isEqualTo(7);
        assertThat(OperationCodec.acceptMillis(id)).hasValue(t);
    }

    @Test
    void newOperationId_isTimeOrdered_andCarriesItsAcceptTime() {
        long t = 1_764_000_000_123L;
        String id = OperationCodec.newOperationId(t);
        assertThat(java.util.UUID.fromString(id).version()).isEqualTo(7);
        assertThat(OperationCodec.acceptMillis(id)).hasValue(t);
        assertThat(OperationCodec.newOperationId(t + 1)).isGreaterThan(id);
        assertThat(OperationCodec.newOperationId(t)).isNotEqualTo(OperationCodec.newOperationId(t));
        assertThat(OperationCodec.acceptMillis("no-such-operation")).isEmpty();
    }
}
