package io.kvmesh.service.watch;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.queue.v1.ChangeEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The Watch streams of this replica. Each applied change goes to every watcher whose prefix matches; each watcher has
 * a bounded buffer drained as fast as its client reads (gRPC flow control), so a slow watcher never slows the others:
 * when its buffer is full its stream ends with RESOURCE_EXHAUSTED and the client may resume with start_version.
 */
public final class WatchHub {
    private static final Logger log = LoggerFactory.getLogger(WatchHub.class);

    private final Set<Watcher> watchers = ConcurrentHashMap.newKeySet();
    private final int bufferLimit;

    public WatchHub(int bufferLimit) {
        this.bufferLimit = bufferLimit;
    }

    /** Registers a watcher, paused until {@link Watcher#resume()} so a catch-up can be sent first. */
    public Watcher register(String prefix, long startVersion, ServerCallStreamObserver<WatchResponse> observer) {
        Watcher w = new Watcher(prefix, startVersion, observer, bufferLimit, this::remove);
        watchers.add(w);
        observer.setOnCancelHandler(() -> remove(w));
        observer.setOnReadyHandler(w::drain);
        return w;
    }

    /** Relays one applied change (replays and rejections are not changes). */
    public void publish(ChangeEvent e) {
        if (e.getReplayed() || e.getOutcome() != ChangeEvent.Outcome.APPLIED || watchers.isEmpty()) {
            return;
        }
        WatchResponse response = toResponse(e);
        for (Watcher w : watchers) {
            if (e.getKey().startsWith(w.prefix())) {
                w.offer(response);
            }
        }
    }

    /** Ends every stream (replica shutting down): clients reconnect to another replica and resume. */
    public void closeAll() {
        for (Watcher w : watchers) {
            w.fail(Status.UNAVAILABLE.withDescription("replica shutting down; resume with start_version"));
        }
        watchers.clear();
    }

    private void remove(Watcher w) {
        if (watchers.remove(w)) {
            log.debug("watcher on '{}' gone ({} left)", w.prefix(), watchers.size());
        }
    }

    static WatchResponse toResponse(ChangeEvent e) {
        EventType type = switch (e.getKind()) {
            case PUT -> EventType.PUT;
            case DELETE -> EventType.DELETE;
            case EXPIRE -> EventType.EXPIRE;
            default -> EventType.EVENT_TYPE_UNSPECIFIED;
        };
        long micros = e.getTimeMicros();
        return WatchResponse.newBuilder().setType(type).setKey(e.getKey()).setValue(e.getValue())
                .setVersion(e.getVersion()).setOperationId(e.getOperationId())
                .setTime(com.google.protobuf.Timestamp.newBuilder().setSeconds(Math.floorDiv(micros, 1_000_000))
                        .setNanos((int) Math.floorMod(micros, 1_000_000) * 1_000))
                .build();
    }
}
