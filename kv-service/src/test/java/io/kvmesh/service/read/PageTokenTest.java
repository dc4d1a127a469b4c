package io.kvmesh.service.read;

import io.kvmesh.core.error.KvException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class PageTokenTest {
    @Test
    void decode_roundTripsAnyKey_andEmptyMeansStart() {
        assertThat(PageToken.decode(PageToken.encode("a/b c|ü😀"))).isEqualTo("a/b c|ü😀");
        assertThat(PageToken.decode("")).isEmpty();
    }

    @Test
    void decode_rejectsTokensItDidNotIssue() {
        assertThatThrownBy(() -> PageToken.decode("not base64!")).isInstanceOf(KvException.class)
                .hasMessageContaining("page_token");
        assertThatThrownBy(() -> PageToken.decode("aGVsbG8")).isInstanceOf(KvException.class);
    }
}
