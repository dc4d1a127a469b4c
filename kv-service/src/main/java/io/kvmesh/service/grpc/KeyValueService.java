package io.kvmesh.service.grpc;

import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetOperationResponse;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutManyResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.validate.Validator;
import io.kvmesh.service.read.ReadPath;
import io.kvmesh.service.watch.WatchHub;
import io.kvmesh.service.watch.Watcher;
import io.kvmesh.service.write.EdgeRequest;
import io.kvmesh.service.write.WritePath;
import io.kvmesh.service.write.WriteRequest;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The KeyValue handlers. Each one checks its request, calls the read or write path, maps the error and responds;
 * none touches SQL, Redis or AMQP itself, and no exception escapes to the client as UNKNOWN.
 */
public final class KeyValueService extends KeyValueGrpc.KeyValueImplBase {
    /** Time kept back from the caller's deadline so a SYNC write can still answer "queued" before it passes. */
    private static final long DEADLINE_MARGIN_MILLIS = 100;
    /** The most puts one PutMany may carry. */
    static final int MAX_PUTS = 1_000;

    private final ReadPath reads;
    private final WritePath writes;
    private final WatchHub watchers;
    private final Supplier<CompletableFuture<Void>> eventsReady;
    private static final Duration EVENTS_WAIT = Duration.ofSeconds(2);
    private final Validator validator;
    private final Duration syncTimeout;

    /**
     * @param eventsReady completes once change events published from then on reach this replica; a Watch stream is
     *                    registered (and its catch-up read) only after it
     */
    public KeyValueService(ReadPath reads, WritePath writes, WatchHub watchers,
                           Supplier<CompletableFuture<Void>> eventsReady, Validator validator, Duration syncTimeout) {
        this.reads = reads;
        this.writes = writes;
        this.watchers = watchers;
        this.eventsReady = eventsReady;
        this.validator = validator;
        this.syncTimeout = syncTimeout;
    }

    @Override
    public void get(GetRequest request, StreamObserver<GetResponse> observer) {
        respond(observer, () -> {
            validator.checkKey(request.getKey());
            return reads.get(request.getKey());
        }, r -> GetResponse.newBuilder().setData(ProtoMapper.toProto(r.entry())).setSource(r.source()).build());
    }

    @Override
    public void put(PutRequest request, StreamObserver<PutResponse> observer) {
        respond(observer, () -> writes.put(checkPutRequest(request)), o -> PutResponse.newBuilder()
                .setStatus(o.status()).setOperationId(o.operationId()).setVersion(o.version()).build());
    }

    @Override
    public void putMany(PutManyRequest request, StreamObserver<PutManyResponse> observer) {
        respond(observer, () -> writes.putMany(checkPutManyRequest(request)), outcomes -> {
            PutManyResponse.Builder b = PutManyResponse.newBuilder();
            outcomes.forEach(o -> b.addResults(PutResponse.newBuilder().setStatus(o.status())
                    .setOperationId(o.operationId()).setVersion(o.version())));
            return b.build();
        });
    }

    @Override
    public void delete(DeleteRequest request, StreamObserver<DeleteResponse> observer) {
        respond(observer, () -> writes.delete(checkDeleteRequest(request)), o -> DeleteResponse.newBuilder()
                .setStatus(o.status()).setOperationId(o.operationId()).setVersion(o.version()).build());
    }

    @Override
    public void getOperation(GetOperationRequest request, StreamObserver<GetOperationResponse> observer) {
        respond(observer, () -> {
            validator.checkOperationId(request.getOperationId());
            return reads.operation(request.getOperationId());
        }, op -> GetOperationResponse.newBuilder().setData(ProtoMapper.toProto(op)).build());
    }

    @Override
    public void watch(WatchRequest request, StreamObserver<WatchResponse> observer) {
        try {
            validator.checkPrefix(request.getPrefix());
            if (request.getStartVersion() < 0) {
                throw KvException.invalid("start_version must not be negative");
            }
        } catch (RuntimeException e) {
            observer.onError(StatusMapper.toStatus(e));
            return;
        }
        Watcher.CatchUp catchUp = request.getStartVersion() == 0 ? null
                : after -> reads.changedSince(request.getPrefix(), request.getStartVersion(), after)
                        .thenApply(rows -> {
                            Instant now = Instant.now();
                            return rows.stream().map(e -> ProtoMapper.toCatchUp(e, now)).toList();
                        });
        awaitEvents();
        watchers.register(request.getPrefix(), request.getStartVersion(), request.getProgressNotify(),
                (ServerCallStreamObserver<WatchResponse>) observer, catchUp);
    }

    /**
     * Waits until change events reach this replica before a stream is registered (and before its headers go out, see
     * EagerHeadersInterceptor), so a client that saw the stream open sees every change applied after. Immediate while
     * the events queue is bound; otherwise one broker round trip, on the calling thread: the stream's handlers can only
     * be set before the handler returns. Past {@link #EVENTS_WAIT} (broker unreachable) the stream opens anyway and
     * receives events once the subscription is back, as before.
     */
    private void awaitEvents() {
        try {
            eventsReady.get().get(EVENTS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            // ready() never fails; a timeout means the broker is slow or away: the stream opens, as it did before
        }
    }

    @Override
    public void list(ListRequest request, StreamObserver<ListResponse> observer) {
        respond(observer, () -> {
            validator.checkPrefix(request.getPrefix());
            int pageSize = validator.pageSize(request.getPageSize());
            return reads.list(request.getPrefix(), pageSize, request.getPageToken());
        }, page -> {
            ListResponse.Builder b = ListResponse.newBuilder().setNextPageToken(page.nextPageToken());
            page.entries().forEach(e -> b.addData(ProtoMapper.toProto(e)));
            return b.build();
        });
    }

    /**
     * Every put of a PutMany checked as a Put is, with its index in the message. A put's request id is its own field
     * only (the call's Idempotency-Key header cannot name each of them), and Envoy's name for the call is told apart
     * per put, so each gets its own operation id.
     */
    private List<WriteRequest> checkPutManyRequest(PutManyRequest request) {
        int n = request.getPutsCount();
        if (n < 1 || n > MAX_PUTS) {
            throw KvException.invalid("puts must hold 1 to " + MAX_PUTS + " puts (got " + n + ")");
        }
        EdgeRequest edge = RequestIdInterceptor.edge();
        Map<String, Integer> ids = new HashMap<>();
        List<WriteRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            PutRequest put = request.getPuts(i);
            try {
                out.add(checkPutRequest(put, put.getRequestId(),
                        edge == null ? null : new EdgeRequest(edge.id() + "/" + i, edge.startMillis())));
            } catch (KvException e) {
                throw new KvException(e.error(), "puts[" + i + "]: " + e.getMessage(), e.details());
            }
            Integer first = put.getRequestId().isEmpty() ? null : ids.putIfAbsent(put.getRequestId(), i);
            if (first != null) {
                throw KvException.invalid("puts[" + i + "] repeats the request id of puts[" + first + "] ('"
                        + put.getRequestId() + "'): each put needs its own");
            }
        }
        return out;
    }

    private WriteRequest checkPutRequest(PutRequest request) {
        return checkPutRequest(request, RequestIdInterceptor.effective(request.getRequestId()),
                RequestIdInterceptor.edge());
    }

    /** Key and value come either flat ({@code /api}) or inside {@code data} ({@code /kv}); both must agree if both are set. */
    private WriteRequest checkPutRequest(PutRequest request, String requestId, EdgeRequest edge) {
        String key = request.getKey();
        String value = request.getValue();
        if (request.hasData()) {
            if (!key.isEmpty() && !key.equals(request.getData().getKey())
                    || !value.isEmpty() && !value.equals(request.getData().getValue())) {
                throw KvException.invalid("give key and value either at the top level or inside data, not both");
            }
            key = request.getData().getKey();
            value = request.getData().getValue();
        }
        validator.checkKey(key);
        validator.checkValue(value);
        Long expected = null;
        if (request.hasExpectedVersion()) {
            validator.checkExpectedVersion(request.getExpectedVersion());
            expected = request.getExpectedVersion();
        }
        Duration ttl = request.hasTtl() ? validator.ttl(request.getTtl().getSeconds(), request.getTtl().getNanos()) : null;
        boolean sync = checkMode(request.getMode());
        return new WriteRequest(key, value, requestId, expected, ttl, sync, syncWait(), edge);
    }

    private WriteRequest checkDeleteRequest(DeleteRequest request) {
        validator.checkKey(request.getKey());
        Long expected = null;
        if (request.hasExpectedVersion()) {
            validator.checkExpectedVersion(request.getExpectedVersion());
            expected = request.getExpectedVersion();
        }
        boolean sync = checkMode(request.getMode());
        return new WriteRequest(request.getKey(), null, RequestIdInterceptor.effective(request.getRequestId()),
                expected, null, sync, syncWait(), RequestIdInterceptor.edge());
    }

    private static boolean checkMode(WriteMode mode) {
        if (mode == WriteMode.UNRECOGNIZED) {
            throw KvException.invalid("mode must be ASYNC or SYNC");
        }
        return mode == WriteMode.SYNC;
    }

    /** How long a SYNC write may wait: the configured limit, or less if the caller's deadline comes sooner. */
    private Duration syncWait() {
        Deadline deadline = Context.current().getDeadline();
        if (deadline == null) {
            return syncTimeout;
        }
        long left = deadline.timeRemaining(TimeUnit.MILLISECONDS) - DEADLINE_MARGIN_MILLIS;
        return Duration.ofMillis(Math.max(0, Math.min(left, syncTimeout.toMillis())));
    }

    /** Runs {@code call} (which validates and starts the work), then answers with its result or its mapped error. */
    private static <T, R> void respond(StreamObserver<R> observer, Supplier<CompletableFuture<T>> call,
                                       Function<T, R> toResponse) {
        CompletableFuture<T> future;
        try {
            future = call.get();
        } catch (RuntimeException e) {
            observer.onError(StatusMapper.toStatus(e));
            return;
        }
        future.whenComplete((result, error) -> {
            if (error != null) {
                observer.onError(StatusMapper.toStatus(error));
                return;
            }
            R response;
            try {
                response = toResponse.apply(result);
            } catch (RuntimeException e) {
                observer.onError(StatusMapper.toStatus(e));
                return;
            }
            observer.onNext(response);
            observer.onCompleted();
        });
    }
}
