package io.kvmesh.core.queue;

import com.google.protobuf.InvalidProtocolBufferException;
import io.kvmesh.queue.v1.Operation;
import io.kvmesh.queue.v1.OperationBatch;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.OptionalLong;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

/** The one encoding of operations on the wire (protobuf) and the one rule for their ids. */
public final class OperationCodec {
    /** A message of one operation: what replicas before group commit published; still read. */
    public static final String CONTENT_TYPE = "application/x-protobuf; proto=kvmesh.queue.v1.Operation";
    /** A message of several operations of one partition, in accept order. */
    public static final String BATCH_CONTENT_TYPE = "application/x-protobuf; proto=kvmesh.queue.v1.OperationBatch";
    /**
     * An empty message a consumer sends into each partition queue when it subscribes: whichever consumer the broker
     * makes active for the queue receives it, learns that it applies the partition, and takes the partition's cache
     * permit without waiting for a write (KvCache). It carries no operation.
     */
    public static final String PERMIT_REQUEST_CONTENT_TYPE = "application/x-kvmesh-cache-permit-request";

    private OperationCodec() {
    }

    public static byte[] encode(Operation op) {
        return op.toByteArray();
    }

    public static byte[] encodeBatch(List<Operation> ops) {
        return OperationBatch.newBuilder().addAllOperations(ops).build().toByteArray();
    }

    public static Operation decode(byte[] body) throws InvalidProtocolBufferException {
        return check(Operation.parseFrom(body));
    }

    /**
     * The operations of a message, by its content type (a batch, or one operation from an older replica; none in a
     * cache permit request).
     */
    public static List<Operation> decodeMessage(String contentType, byte[] body) throws InvalidProtocolBufferException {
        if (PERMIT_REQUEST_CONTENT_TYPE.equals(contentType)) {
            return List.of();
        }
        if (!BATCH_CONTENT_TYPE.equals(contentType)) {
            return List.of(decode(body));
        }
        List<Operation> ops = OperationBatch.parseFrom(body).getOperationsList();
        if (ops.isEmpty()) {
            throw new InvalidProtocolBufferException("empty operation batch");
        }
        for (Operation op : ops) {
            check(op);
        }
        return ops;
    }

    private static Operation check(Operation op) throws InvalidProtocolBufferException {
        if (op.getId().isEmpty() || op.getKey().isEmpty() || op.getKind() == Operation.Kind.KIND_UNSPECIFIED
                || op.getKind() == Operation.Kind.UNRECOGNIZED) {
            throw new InvalidProtocolBufferException("operation lacks id, key or kind");
        }
        return op;
    }

    /**
     * The operation id of a write with a client request id: derived from the id and the request's fingerprint, so
     * every retry of the request carries the same operation id (the applier applies it once), and a different request
     * under the same id has an operation id of its own (it can never be taken for a redelivery of the first and
     * skipped; the replicas refuse it before the publish, see {@code kv_request_id}).
     */
    public static String requestOperationId(String requestId, String requestHash) {
        return UUID.nameUUIDFromBytes(("kvmesh-request:" + requestId + "\n" + requestHash)
                .getBytes(StandardCharsets.UTF_8)).toString();
    }

    /**
     * The operation id of a write that came through Envoy without a client request id: time-ordered like
     * {@link #newOperationId}, with Envoy's receive time of the request in the time bits and the rest from Envoy's
     * id of the request and the request's fingerprint. Envoy sends the same two values with each of its retries (to
     * another replica, after a reset or UNAVAILABLE), so a retried write carries the same operation id and the
     * applier's exactly-once on operation ids applies it once; nothing is read or claimed before the publish.
     */
    public static String edgeOperationId(String edgeRequestId, long edgeStartMillis, String requestHash) {
        UUID named = UUID.nameUUIDFromBytes(("kvmesh-edge:" + edgeRequestId + "\n" + requestHash)
                .getBytes(StandardCharsets.UTF_8));
        long msb = (edgeStartMillis << 16) | 0x7000L | (named.getMostSignificantBits() & 0x0FFF);
        long lsb = (named.getLeastSignificantBits() & 0x3FFF_FFFF_FFFF_FFFFL) | 0x8000_0000_0000_0000L;
        return new UUID(msb, lsb).toString();
    }

    /**
     * A fresh operation id: time-ordered (a version 7 UUID: the accept time in its first 48 bits, then 74 random
     * bits), so the id itself says when it was accepted and operation status can tell PENDING from unknown without a
     * per-write record.
     */
    public static String newOperationId(long acceptMillis) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        long msb = (acceptMillis << 16) | 0x7000L | (random.nextInt() & 0x0FFF);
        long lsb = (random.nextLong() & 0x3FFF_FFFF_FFFF_FFFFL) | 0x8000_0000_0000_0000L;
        return new UUID(msb, lsb).toString();
    }

    /** The id of the expiry that turns version {@code version - 1} of {@code key} into a tombstone at {@code version}. */
    public static String expiryId(String key, long version) {
        return "expire:" + key + ":" + version;
    }

    /** When an operation with a time-ordered id was accepted (epoch ms); empty for ids derived from request ids. */
    public static OptionalLong acceptMillis(String operationId) {
        try {
            UUID id = UUID.fromString(operationId);
            return id.version() == 7 && id.variant() == 2 ? OptionalLong.of(id.getMostSignificantBits() >>> 16)
                    : OptionalLong.empty();
        } catch (IllegalArgumentException e) {
            return OptionalLong.empty();
        }
    }
}
