package io.kvmesh.service.grpc;

import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;

/**
 * Sends the response headers of a server-streaming call as soon as it starts, instead of with its first message. A
 * Watch client (through Envoy, an HTTP response) then knows at once that it is subscribed, even if no change comes
 * for a while.
 */
public final class EagerHeadersInterceptor implements ServerInterceptor {

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        if (call.getMethodDescriptor().getType() != MethodDescriptor.MethodType.SERVER_STREAMING) {
            return next.startCall(call, headers);
        }
        ServerCall<Q, R> once = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            private boolean sent;

            @Override
            public synchronized void sendHeaders(Metadata responseHeaders) {
                if (!sent) {
                    sent = true;
                    super.sendHeaders(responseHeaders);
                }
            }
        };
        once.sendHeaders(new Metadata());
        return next.startCall(once, headers);
    }
}
