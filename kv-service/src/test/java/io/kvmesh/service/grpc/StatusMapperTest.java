package io.kvmesh.service.grpc;

import io.grpc.Status;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletionException;

import static org.assertj.core.api.Assertions.assertThat;

class StatusMapperTest {
    @Test
    void toStatus_mapsEachErrorKindToItsCanonicalCode() {
        assertThat(code(new KvException(KvError.INVALID_ARGUMENT, "x"))).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(code(new KvException(KvError.NOT_FOUND, "x"))).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(code(new KvException(KvError.CONFLICT, "x"))).isEqualTo(Status.Code.ABORTED);
        assertThat(code(new KvException(KvError.UNAVAILABLE, "x"))).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(code(new KvException(KvError.INTERNAL, "x"))).isEqualTo(Status.Code.INTERNAL);
    }

    @Test
    void toStatus_unwrapsAsyncWrappers_andKeepsTheMessage() {
        var status = StatusMapper.toStatus(new CompletionException(KvException.invalid("key must not be empty")))
                .getStatus();
        assertThat(status.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(status.getDescription()).isEqualTo("key must not be empty");
    }

    @Test
    void toStatus_hidesInternalDetail_andNeverAnswersUnknown() {
        var internal = StatusMapper.toStatus(new KvException(KvError.INTERNAL, "relation kv does not exist")).getStatus();
        assertThat(internal.getDescription()).isEqualTo("internal error");
        var unexpected = StatusMapper.toStatus(new IllegalStateException("boom at line 3")).getStatus();
        assertThat(unexpected.getCode()).isEqualTo(Status.Code.INTERNAL);
        assertThat(unexpected.getDescription()).doesNotContain("boom");
    }

    private static Status.Code code(Throwable t) {
        return StatusMapper.toStatus(t).getStatus().getCode();
    }
}
