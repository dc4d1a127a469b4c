package io.kvmesh.service.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.kvmesh.service.write.EdgeRequest;

/**
 * Carries two different ids from the headers into the call's context.
 * <ul>
 * <li>The client's request id, an idempotency key that names one request: the standard {@code Idempotency-Key}
 * header (IETF draft), else {@code x-request-id}. Envoy does not generate {@code x-request-id} (envoy.yaml), so one
 * that arrives was set by the client itself.</li>
 * <li>Envoy's own name for the request ({@link EdgeRequest#HEADER}), which Envoy keeps across its retries: it makes
 * a retried write carry the same operation id, so the applier applies it once, at no cost before the publish.</li>
 * </ul>
 */
public final class RequestIdInterceptor implements ServerInterceptor {
    static final Context.Key<String> REQUEST_ID = Context.key("kvmesh-request-id");
    static final Context.Key<EdgeRequest> EDGE = Context.key("kvmesh-edge-request");
    private static final Metadata.Key<String> IDEMPOTENCY_KEY =
            Metadata.Key.of("idempotency-key", Metadata.ASCII_STRING_MARSHALLER);
    private static final Metadata.Key<String> X_REQUEST_ID =
            Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);
    private static final Metadata.Key<String> EDGE_REQUEST =
            Metadata.Key.of(EdgeRequest.HEADER, Metadata.ASCII_STRING_MARSHALLER);

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        String id = headers.get(IDEMPOTENCY_KEY);
        if (id == null || id.isEmpty()) {
            id = headers.get(X_REQUEST_ID);
        }
        EdgeRequest edge = EdgeRequest.parse(headers.get(EDGE_REQUEST));
        if ((id == null || id.isEmpty()) && edge == null) {
            return next.startCall(call, headers);
        }
        Context context = Context.current();
        if (id != null && !id.isEmpty()) {
            context = context.withValue(REQUEST_ID, id);
        }
        if (edge != null) {
            context = context.withValue(EDGE, edge);
        }
        return Contexts.interceptCall(context, call, headers, next);
    }

    /** The request id to use: the request's own field, else Idempotency-Key, else x-request-id, else "" (none). */
    static String effective(String fromRequest) {
        if (!fromRequest.isEmpty()) {
            return fromRequest;
        }
        String fromHeader = REQUEST_ID.get();
        return fromHeader == null ? "" : fromHeader;
    }

    /** Envoy's name for the current request, or null when it did not come through Envoy. */
    static EdgeRequest edge() {
        return EDGE.get();
    }
}
