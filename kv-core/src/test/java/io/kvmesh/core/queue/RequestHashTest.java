package io.kvmesh.core.queue;

import io.kvmesh.queue.v1.Operation;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class RequestHashTest {
    private static Operation.Builder put(String key, String value) {
        return Operation.newBuilder().setKind(Operation.Kind.PUT).setKey(key).setValue(value);
    }

    @Test
    void sameWrite_sameFingerprint_whateverItsIdModeOrAcceptTime() {
        String a = RequestHash.of(put("k", "v").setId("1").setRequestId("r").setAcceptTimeMicros(1));
        String b = RequestHash.of(put("k", "v").setId("2").setRequestId("s").setAcceptTimeMicros(2));
        assertThat(a).isEqualTo(b).hasSize(22);
    }

    @Test
    void anyDifferenceInWhatTheWriteDoes_changesTheFingerprint() {
        String base = RequestHash.of(put("k", "v"));
        assertThat(RequestHash.of(put("k2", "v"))).isNotEqualTo(base);
        assertThat(RequestHash.of(put("k", "v2"))).isNotEqualTo(base);
        assertThat(RequestHash.of(put("k", "v").setExpectedVersion(0))).isNotEqualTo(base);
        assertThat(RequestHash.of(put("k", "v").setTtlMillis(1000))).isNotEqualTo(base);
        assertThat(RequestHash.of(Operation.newBuilder().setKind(Operation.Kind.DELETE).setKey("k"))).isNotEqualTo(base);
        // field boundaries cannot be shifted: key "ab" + value "c" is not key "a" + value "bc"
        assertThat(RequestHash.of(put("ab", "c"))).isNotEqualTo(RequestHash.of(put("a", "bc")));
    }

    @Test
    void unknownFingerprints_neverCountAsADifferentRequest() {
        assertThat(RequestHash.sameRequest(null, "x")).isTrue();
        assertThat(RequestHash.sameRequest("", "x")).isTrue();
        assertThat(RequestHash.sameRequest("x", "x")).isTrue();
        assertThat(RequestHash.sameRequest("x", "y")).isFalse();
    }
}
