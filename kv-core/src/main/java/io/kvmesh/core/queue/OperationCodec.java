package io.kvmesh.core.queue;

import com.google.protobuf.InvalidProtocolBufferException;
import io.kvmesh.queue.v1.Operation;

import java.nio.charset.StandardCharsets;
import java.util.UUID;

/** The one encoding of operations on the wire (protobuf) and the one rule for their ids. */
public final class OperationCodec {
    public static final String CONTENT_TYPE = "application/x-protobuf; proto=kvmesh.queue.v1.Operation";

    private OperationCodec() {
    }

    public static byte[] encode(Operation op) {
        return op.toByteArray();
    }

    public static Operation decode(byte[] body) throws InvalidProtocolBufferException {
        Operation op = Operation.parseFrom(body);
        if (op.getId().isEmpty() || op.getKey().isEmpty() || op.getKind() == Operation.Kind.KIND_UNSPECIFIED
                || op.getKind() == Operation.Kind.UNRECOGNIZED) {
            throw new InvalidProtocolBufferException("operation lacks id, key or kind");
        }
        return op;
    }

    /**
     * The operation id: derived from the request id when there is one, so every retry of a request carries the same
     * id and the applier's de-duplication applies it once; random otherwise.
     */
    public static String operationId(String requestId) {
        return requestId == null || requestId.isEmpty()
                ? UUID.randomUUID().toString()
                : UUID.nameUUIDFromBytes(("kvmesh-request:" + requestId).getBytes(StandardCharsets.UTF_8)).toString();
    }
}
