package io.kvmesh.service.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;

/**
 * Carries the edge's {@code x-request-id} header into the call's context. Envoy keeps the header across its
 * retries, so a write that carries no {@code request_id} of its own is still applied once.
 */
public final class RequestIdInterceptor implements ServerInterceptor {
    static final Context.Key<String> REQUEST_ID = Context.key("x-request-id");
    private static final Metadata.Key<String> HEADER = Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        String id = headers.get(HEADER);
        if (id == null || id.isEmpty()) {
            return next.startCall(call, headers);
        }
        return Contexts.interceptCall(Context.current().withValue(REQUEST_ID, id), call, headers, next);
    }

    /** The request id to use: the client's own, else the edge's header, else "" (none). */
    static String effective(String fromRequest) {
        if (!fromRequest.isEmpty()) {
            return fromRequest;
        }
        String fromHeader = REQUEST_ID.get();
        return fromHeader == null ? "" : fromHeader;
    }
}
