package io.kvmesh.cli;

import com.google.protobuf.Timestamp;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.GetOperationRequest;
import io.kvmesh.api.v1.GetOperationResponse;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import io.kvmesh.api.v1.OperationState;
import io.kvmesh.api.v1.OperationStatus;
import io.kvmesh.api.v1.PutManyRequest;
import io.kvmesh.api.v1.PutManyResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WatchRequest;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.api.v1.WriteMode;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An in-memory KeyValue for the CLI's unit tests: applies writes at once, pages by key, fans events out to watchers,
 * and fails on demand (keys starting with "fail-unavailable" or "fail-internal").
 */
final class FakeKeyValue extends KeyValueGrpc.KeyValueImplBase {
    final NavigableMap<String, Entry> entries = new ConcurrentSkipListMap<>();
    final Map<String, OperationStatus> operations = new ConcurrentHashMap<>();
    final List<PutRequest> puts = new CopyOnWriteArrayList<>();
    final List<ListRequest> lists = new CopyOnWriteArrayList<>();
    final List<StreamObserver<WatchResponse>> watchers = new CopyOnWriteArrayList<>();
    final AtomicInteger watchCalls = new AtomicInteger();
    final AtomicInteger putManyCalls = new AtomicInteger();
    private final Map<String, Long> versions = new ConcurrentHashMap<>();

    private static Timestamp now() {
        long ms = System.currentTimeMillis();
        return Timestamp.newBuilder().setSeconds(ms / 1000).setNanos((int) (ms % 1000) * 1_000_000).build();
    }

    private static boolean failed(String key, StreamObserver<?> observer) {
        if (key.startsWith("fail-unavailable")) {
            observer.onError(Status.UNAVAILABLE.withDescription("no healthy upstream").asRuntimeException());
            return true;
        }
        if (key.startsWith("fail-internal")) {
            observer.onError(Status.INTERNAL.withDescription("internal error").asRuntimeException());
            return true;
        }
        return false;
    }

    @Override
    public void get(GetRequest req, StreamObserver<GetResponse> observer) {
        if (req.getKey().isEmpty()) {
            observer.onError(Status.INVALID_ARGUMENT.withDescription("key must not be empty").asRuntimeException());
            return;
        }
        if (failed(req.getKey(), observer)) {
            return;
        }
        Entry e = entries.get(req.getKey());
        if (e == null) {
            observer.onError(Status.NOT_FOUND.withDescription("key not found: " + req.getKey()).asRuntimeException());
            return;
        }
        observer.onNext(GetResponse.newBuilder().setData(e).setSource("redis").build());
        observer.onCompleted();
    }

    @Override
    public synchronized void put(PutRequest req, StreamObserver<PutResponse> observer) {
        puts.add(req);
        if (failed(req.getKey(), observer)) {
            return;
        }
        long current = entries.containsKey(req.getKey()) ? entries.get(req.getKey()).getVersion() : 0;
        String op = UUID.randomUUID().toString();
        if (req.hasExpectedVersion() && req.getExpectedVersion() != current) {
            operations.put(op, OperationStatus.newBuilder().setOperationId(op).setKey(req.getKey()).setKind("PUT")
                    .setState(OperationState.REJECTED).setReason("version conflict").setApplyTime(now()).build());
            if (req.getMode() == WriteMode.SYNC) {
                observer.onError(Status.ABORTED.withDescription("version conflict: expected version "
                        + req.getExpectedVersion() + ", current version " + current).asRuntimeException());
            } else {
                observer.onNext(PutResponse.newBuilder().setStatus("queued").setOperationId(op).build());
                observer.onCompleted();
            }
            return;
        }
        long version = versions.merge(req.getKey(), 1L, Long::sum);
        Timestamp t = now();
        Entry.Builder e = Entry.newBuilder().setKey(req.getKey()).setValue(req.getValue()).setVersion(version)
                .setCreateTime(current == 0 ? t : entries.get(req.getKey()).getCreateTime()).setUpdateTime(t);
        if (req.hasTtl()) {
            e.setExpireTime(Timestamp.newBuilder().setSeconds(t.getSeconds() + req.getTtl().getSeconds()));
        }
        entries.put(req.getKey(), e.build());
        operations.put(op, OperationStatus.newBuilder().setOperationId(op).setKey(req.getKey()).setKind("PUT")
                .setState(OperationState.APPLIED).setVersion(version).setApplyTime(t).build());
        publish(WatchResponse.newBuilder().setType(EventType.PUT).setKey(req.getKey()).setValue(req.getValue())
                .setVersion(version).setOperationId(op).setTime(t).build());
        boolean sync = req.getMode() == WriteMode.SYNC;
        observer.onNext(PutResponse.newBuilder().setStatus(sync ? "applied" : "queued").setOperationId(op)
                .setVersion(sync ? version : 0).build());
        observer.onCompleted();
    }

    /** As the service: every put checked first (a malformed one refuses the call naming its index), then each put. */
    @Override
    public synchronized void putMany(PutManyRequest req, StreamObserver<PutManyResponse> observer) {
        putManyCalls.incrementAndGet();
        for (int i = 0; i < req.getPutsCount(); i++) {
            PutRequest p = req.getPuts(i);
            if (p.getKey().isEmpty() || p.getKey().startsWith("invalid")) {
                observer.onError(Status.INVALID_ARGUMENT.withDescription("puts[" + i + "]: key is not allowed")
                        .asRuntimeException());
                return;
            }
            if (p.getKey().startsWith("fail-")) {
                failed(p.getKey(), observer);
                return;
            }
        }
        PutManyResponse.Builder b = PutManyResponse.newBuilder();
        for (PutRequest p : req.getPutsList()) {
            List<PutResponse> one = new ArrayList<>();
            put(p, new StreamObserver<>() {
                @Override
                public void onNext(PutResponse value) {
                    one.add(value);
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                }
            });
            b.addAllResults(one);
        }
        observer.onNext(b.build());
        observer.onCompleted();
    }

    @Override
    public synchronized void delete(DeleteRequest req, StreamObserver<DeleteResponse> observer) {
        if (failed(req.getKey(), observer)) {
            return;
        }
        String op = UUID.randomUUID().toString();
        Entry gone = entries.remove(req.getKey());
        long version = gone == null ? 0 : versions.merge(req.getKey(), 1L, Long::sum);
        if (gone != null) {
            publish(WatchResponse.newBuilder().setType(EventType.DELETE).setKey(req.getKey()).setVersion(version)
                    .setOperationId(op).setTime(now()).build());
        }
        boolean sync = req.getMode() == WriteMode.SYNC;
        observer.onNext(DeleteResponse.newBuilder().setStatus(sync ? "applied" : "queued").setOperationId(op)
                .setVersion(sync ? version : 0).build());
        observer.onCompleted();
    }

    @Override
    public void list(ListRequest req, StreamObserver<ListResponse> observer) {
        lists.add(req);
        if (req.getPageSize() < 0) {
            observer.onError(Status.INVALID_ARGUMENT.withDescription("page_size must not be negative").asRuntimeException());
            return;
        }
        int size = req.getPageSize() == 0 ? 100 : Math.min(req.getPageSize(), 1000);
        ListResponse.Builder page = ListResponse.newBuilder();
        var tail = req.getPageToken().isEmpty() ? entries.tailMap(req.getPrefix(), true)
                : entries.tailMap(req.getPageToken(), false);
        String last = null;
        for (Entry e : tail.values()) {
            if (!e.getKey().startsWith(req.getPrefix())) {
                break;
            }
            if (page.getDataCount() == size) {
                page.setNextPageToken(last);
                break;
            }
            page.addData(e);
            last = e.getKey();
        }
        observer.onNext(page.build());
        observer.onCompleted();
    }

    @Override
    public void getOperation(GetOperationRequest req, StreamObserver<GetOperationResponse> observer) {
        OperationStatus op = operations.get(req.getOperationId());
        if (op == null) {
            observer.onError(Status.NOT_FOUND.withDescription("operation not found: " + req.getOperationId()).asRuntimeException());
            return;
        }
        observer.onNext(GetOperationResponse.newBuilder().setData(op).build());
        observer.onCompleted();
    }

    @Override
    public void watch(WatchRequest req, StreamObserver<WatchResponse> observer) {
        watchCalls.incrementAndGet();
        if (req.getStartVersion() > 0) {
            for (Entry e : entries.tailMap(req.getPrefix(), true).values()) {
                if (e.getKey().startsWith(req.getPrefix()) && e.getVersion() >= req.getStartVersion()) {
                    observer.onNext(WatchResponse.newBuilder().setType(EventType.PUT).setKey(e.getKey())
                            .setValue(e.getValue()).setVersion(e.getVersion()).setTime(e.getUpdateTime()).build());
                }
            }
        }
        StreamObserver<WatchResponse> filtered = new StreamObserver<>() {
            @Override
            public void onNext(WatchResponse ev) {
                if (ev.getKey().startsWith(req.getPrefix())) {
                    observer.onNext(ev);
                }
            }

            @Override
            public void onError(Throwable t) {
                observer.onError(t);
            }

            @Override
            public void onCompleted() {
                observer.onCompleted();
            }
        };
        watchers.add(filtered);
        ((ServerCallStreamObserver<WatchResponse>) observer).setOnCancelHandler(() -> watchers.remove(filtered));
    }

    private void publish(WatchResponse ev) {
        for (StreamObserver<WatchResponse> w : watchers) {
            try {
                w.onNext(ev);
            } catch (RuntimeException e) {
                watchers.remove(w);
            }
        }
    }
}
