package io.kvmesh.service.auth;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetOperationResponse;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.auth.AuthFailure;
import io.kvmesh.auth.Permission;
import io.kvmesh.auth.Principal;
import io.kvmesh.auth.TokenVerifier;
import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.service.grpc.StatusMapper;

import java.util.Locale;
import java.util.Map;

/**
 * The one place the KeyValue API is authorised, for gRPC and REST alike (Envoy's transcoder turns REST into these
 * same calls and passes the {@code Authorization} header on as metadata). A call without a valid bearer token ends
 * UNAUTHENTICATED (HTTP 401); a request for a key or prefix its token does not grant ends PERMISSION_DENIED (403),
 * before the service sees it. Which permission each request needs:
 * <ul>
 *   <li>Put, Delete: {@code write} on the key; PutMany: {@code write} on every put's key;</li>
 *   <li>Get: {@code read} on the key; List: {@code read} on the whole prefix (a partly granted range is refused,
 *   as etcd does, not filtered);</li>
 *   <li>Watch: {@code watch} on the whole prefix;</li>
 *   <li>GetOperation: {@code read} on the operation's key, checked on the answer (a pending operation names no key).</li>
 * </ul>
 * A request of any other type is refused: new RPCs stay closed until they are given a rule here.
 */
public final class AuthInterceptor implements ServerInterceptor {
    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final String BEARER = "bearer ";

    private final TokenVerifier verifier;

    public AuthInterceptor(TokenVerifier verifier) {
        this.verifier = verifier;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        Principal principal;
        try {
            principal = verifier.verify(bearer(headers.get(AUTHORIZATION)));
        } catch (AuthFailure e) {
            return refuse(call, new KvException(KvError.UNAUTHENTICATED, e.getMessage()));
        }
        GuardedCall<Q, R> guarded = new GuardedCall<>(call, principal);
        ServerCall.Listener<Q> delegate = next.startCall(guarded, headers);
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(delegate) {
            private boolean refused;

            @Override
            public void onMessage(Q message) {
                KvException denied = check(principal, message);
                if (denied != null) {
                    refused = true;
                    guarded.closeRefused(denied);
                    return;
                }
                super.onMessage(message);
            }

            @Override
            public void onHalfClose() {
                if (!refused) {
                    super.onHalfClose();
                }
            }
        };
    }

    /** Why {@code principal} may not make this request, or null if it may. */
    static KvException check(Principal principal, Object request) {
        return switch (request) {
            case PutRequest r -> keyRule(principal, Permission.WRITE, r.getKey().isEmpty() && r.hasData()
                    ? r.getData().getKey() : r.getKey());
            case PutManyRequest r -> r.getPutsList().stream().map(p -> check(principal, p))
                    .filter(java.util.Objects::nonNull).findFirst().orElse(null);
            case DeleteRequest r -> keyRule(principal, Permission.WRITE, r.getKey());
            case GetRequest r -> keyRule(principal, Permission.READ, r.getKey());
            case ListRequest r -> prefixRule(principal, Permission.READ, r.getPrefix());
            case WatchRequest r -> prefixRule(principal, Permission.WATCH, r.getPrefix());
            case GetOperationRequest r -> null; // checked on the answer, which names the key
            default -> denied(principal, "this request is not open to tokens", Map.of());
        };
    }

    private static KvException keyRule(Principal principal, Permission permission, String key) {
        return principal.allowsKey(permission, key) ? null
                : denied(principal, "token grants no " + permission.claimName() + " on key '" + key + "'",
                Map.of("permission", permission.claimName(), "key", key));
    }

    private static KvException prefixRule(Principal principal, Permission permission, String prefix) {
        return principal.allowsPrefix(permission, prefix) ? null
                : denied(principal, "token grants no " + permission.claimName() + " on every key under '" + prefix
                + "'" + (prefix.isEmpty() ? " (ask for a prefix the token grants)" : ""),
                Map.of("permission", permission.claimName(), "prefix", prefix));
    }

    private static KvException denied(Principal principal, String message, Map<String, String> details) {
        return new KvException(KvError.PERMISSION_DENIED, message + " (subject '" + principal.subject() + "')",
                details);
    }

    private static String bearer(String header) {
        if (header == null) {
            return null;
        }
        String h = header.trim();
        return h.toLowerCase(Locale.ROOT).startsWith(BEARER) ? h.substring(BEARER.length()).trim() : "";
    }

    private static <Q, R> ServerCall.Listener<Q> refuse(ServerCall<Q, R> call, KvException e) {
        StatusRuntimeException s = StatusMapper.toStatus(e);
        Metadata trailers = s.getTrailers() == null ? new Metadata() : s.getTrailers();
        call.close(s.getStatus(), trailers);
        return new ServerCall.Listener<>() {
        };
    }

    /** The call as the service sees it: answers naming a key the token may not read are replaced by a refusal. */
    private static final class GuardedCall<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        private final Principal principal;
        private volatile boolean closed;

        GuardedCall(ServerCall<Q, R> call, Principal principal) {
            super(call);
            this.principal = principal;
        }

        @Override
        public void sendMessage(R message) {
            if (closed) {
                return;
            }
            if (message instanceof GetOperationResponse r && !r.getData().getKey().isEmpty()) {
                KvException denied = keyRule(principal, Permission.READ, r.getData().getKey());
                if (denied != null) {
                    closeRefused(denied);
                    return;
                }
            }
            super.sendMessage(message);
        }

        @Override
        public void sendHeaders(Metadata headers) {
            if (!closed) {
                super.sendHeaders(headers);
            }
        }

        @Override
        public void close(Status status, Metadata trailers) {
            if (!closed) {
                closed = true;
                super.close(status, trailers);
            }
        }

        void closeRefused(KvException e) {
            StatusRuntimeException s = StatusMapper.toStatus(e);
            close(s.getStatus(), s.getTrailers() == null ? new Metadata() : s.getTrailers());
        }
    }
}
