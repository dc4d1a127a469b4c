package io.kvmesh.service.grpc;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;

/**
 * Sends the response headers of a server-streaming call as soon as its handler has accepted the request, instead of
 * with its first message. A Watch client then knows at once that it is subscribed, even if no change comes for a
 * while. Not before: a request the handler refuses (a bad prefix, bytes that are not UTF-8) must end as an error
 * with no headers sent, so that Envoy can answer it with an HTTP error status instead of 200 and an error body.
 */
public final class EagerHeadersInterceptor implements ServerInterceptor {

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        if (call.getMethodDescriptor().getType() != MethodDescriptor.MethodType.SERVER_STREAMING) {
            return next.startCall(call, headers);
        }
        OnceHeaders<Q, R> once = new OnceHeaders<>(call);
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(once, headers)) {
            @Override
            public void onHalfClose() {
                super.onHalfClose(); // the handler runs here: it either refused the request or started the stream
                once.sendHeadersIfOpen();
            }
        };
    }

    /** A call whose headers go out once, whoever asks first; none after it was closed. */
    private static final class OnceHeaders<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        private boolean sent;
        private boolean closed;

        OnceHeaders(ServerCall<Q, R> call) {
            super(call);
        }

        @Override
        public synchronized void sendHeaders(Metadata responseHeaders) {
            if (!sent) {
                sent = true;
                super.sendHeaders(responseHeaders);
            }
        }

        synchronized void sendHeadersIfOpen() {
            if (!closed) {
                sendHeaders(new Metadata());
            }
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            closed = true;
            super.close(status, trailers);
        }
    }
}
