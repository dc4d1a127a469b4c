package io.kvmesh.service.grpc;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import io.grpc.StatusRuntimeException;
import io.kvmesh.core.error.KvException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** The one place where failures become gRPC statuses (and, through Envoy, HTTP codes). */
public final class StatusMapper {
    private static final Logger log = LoggerFactory.getLogger(StatusMapper.class);

    private StatusMapper() {
    }

    public static StatusRuntimeException toStatus(Throwable failure) {
        Throwable t = unwrap(failure);
        if (t instanceof StatusRuntimeException sre) {
            return sre;
        }
        if (t instanceof KvException e) {
            Status status = switch (e.error()) {
                case INVALID_ARGUMENT -> Status.INVALID_ARGUMENT;
                case NOT_FOUND -> Status.NOT_FOUND;
                case CONFLICT -> Status.ABORTED;
                case REQUEST_ID_REUSED -> Status.FAILED_PRECONDITION;
                case UNAUTHENTICATED -> Status.UNAUTHENTICATED;
                case PERMISSION_DENIED -> Status.PERMISSION_DENIED;
                case UNAVAILABLE -> Status.UNAVAILABLE;
                case INTERNAL -> Status.INTERNAL;
            };
            if (status.getCode() == Status.Code.INTERNAL || status.getCode() == Status.Code.UNAVAILABLE) {
                log.warn("{}: {}", e.getMessage(), e.getCause() == null ? "" : e.getCause().toString());
            }
            String description = status.getCode() == Status.Code.INTERNAL ? "internal error" : e.getMessage();
            if (e.details().isEmpty()) {
                return status.withDescription(description).asRuntimeException();
            }
            ErrorInfo info = ErrorInfo.newBuilder().setReason(e.error().name()).setDomain("kvmesh.io")
                    .putAllMetadata(e.details()).build();
            return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
                    .setCode(status.getCode().value()).setMessage(description).addDetails(Any.pack(info)).build());
        }
        log.error("unexpected failure", t);
        return Status.INTERNAL.withDescription("internal error").asRuntimeException();
    }

    private static Throwable unwrap(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }
}
