package io.kvmesh.service.grpc;

import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.DeleteRequest;
import io.kvmesh.api.v1.DeleteResponse;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.api.v1.ListRequest;
import io.kvmesh.api.v1.ListResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.validate.Validator;
import io.kvmesh.service.read.ReadPath;
import io.kvmesh.service.write.WritePath;

import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The KeyValue handlers. Each one checks its request, calls the read or write path, maps the error and responds;
 * none touches SQL, Redis or AMQP itself, and no exception escapes to the client as UNKNOWN.
 */
public final class KeyValueService extends KeyValueGrpc.KeyValueImplBase {
    static final String QUEUED = "queued";

    private final ReadPath reads;
    private final WritePath writes;
    private final Validator validator;

    public KeyValueService(ReadPath reads, WritePath writes, Validator validator) {
        this.reads = reads;
        this.writes = writes;
        this.validator = validator;
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
        respond(observer, () -> {
            KeyAndValue kv = checkPutRequest(request);
            return writes.put(kv.key(), kv.value(), RequestIdInterceptor.effective(request.getRequestId()));
        }, id -> PutResponse.newBuilder().setStatus(QUEUED).setOperationId(id).build());
    }

    @Override
    public void delete(DeleteRequest request, StreamObserver<DeleteResponse> observer) {
        respond(observer, () -> {
            validator.checkKey(request.getKey());
            return writes.delete(request.getKey(), RequestIdInterceptor.effective(request.getRequestId()));
        }, id -> DeleteResponse.newBuilder().setStatus(QUEUED).setOperationId(id).build());
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

    private record KeyAndValue(String key, String value) {
    }

    /** Key and value come either flat ({@code /api}) or inside {@code data} ({@code /kv}); both must agree if both are set. */
    private KeyAndValue checkPutRequest(PutRequest request) {
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
        return new KeyAndValue(key, value);
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
