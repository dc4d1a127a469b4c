package io.kvmesh.service.grpc;

import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;

/**
 * Answers a request message that cannot be parsed with INVALID_ARGUMENT (HTTP 400 through Envoy). Such a message
 * reaches a replica when a REST call carries bytes that are not UTF-8 in a text field (a query like {@code ?key=%FF}):
 * Envoy puts the bytes into the protobuf string as they are, and protobuf refuses to parse them. Without this, gRPC
 * reports the parse failure as UNKNOWN "Application error processing RPC", which Envoy turns into a 500.
 * <p>
 * {@link #protect} wraps a service whose messages stay serialized until its own listener parses them
 * ({@code ServerInterceptors.useInputStreamMessages}), so the parse runs inside this interceptor's listener.
 */
public final class MalformedRequestInterceptor implements ServerInterceptor {

    /** {@code service} with its messages parsed inside this interceptor, so a malformed one is INVALID_ARGUMENT. */
    public static ServerServiceDefinition protect(ServerServiceDefinition service) {
        return ServerInterceptors.intercept(ServerInterceptors.useInputStreamMessages(service),
                new MalformedRequestInterceptor());
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(call, headers)) {
            private boolean refused;

            @Override
            public void onMessage(Q message) {
                if (refused) {
                    return;
                }
                try {
                    super.onMessage(message);
                } catch (RuntimeException e) {
                    refused = true;
                    call.close(Status.INVALID_ARGUMENT.withDescription("the request cannot be read: a text field"
                            + " holds bytes that are not UTF-8, or the message is malformed"), new Metadata());
                }
            }

            @Override
            public void onHalfClose() {
                if (!refused) {
                    super.onHalfClose();
                }
            }

            @Override
            public void onReady() {
                if (!refused) {
                    super.onReady();
                }
            }
        };
    }
}
