package io.kvmesh.service.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;

/**
 * Carries a request id from the headers into the call's context: the standard {@code Idempotency-Key} header (IETF
 * draft), else the edge's {@code x-request-id}. Envoy keeps {@code x-request-id} across its retries, so a write that
 * carries no id of its own is still applied once.
 */
public final class RequestIdInterceptor implements ServerInterceptor {
    static final Context.Key<String> REQUEST_ID = Context.key("kvmesh-request-id");
    private static final Metadata.Key<String> IDEMPOTENCY_KEY =
            Metadata.Key.of("idempotency-key", Metadata.ASCII_STRING_MARSHALLER);
    private static final Metadata.Key<String> X_REQUEST_ID =
            Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        String id = headers.get(IDEMPOTENCY_KEY);
        if (id == null || id.isEmpty()) {
            id = headers.get(X_REQUEST_ID);
        }
        if (id == null || id.isEmpty()) {
            return next.startCall(call, headers);
        }
        return Contexts.interceptCall(Context.current().withValue(REQUEST_ID, id), call, headers, next);
    }

    /** The request id to use: the request's own field, else Idempotency-Key, else x-request-id, else "" (none). */
    static String effective(String fromRequest) {
        if (!fromRequest.isEmpty()) {
            return fromRequest;
        }
        String fromHeader = REQUEST_ID.get();
        return fromHeader == null ? "" : fromHeader;
    }
}
