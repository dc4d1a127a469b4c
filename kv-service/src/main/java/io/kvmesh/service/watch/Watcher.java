package io.kvmesh.service.watch;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.kvmesh.api.v1.WatchResponse;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * One Watch stream: a bounded buffer in front of the gRPC observer. Per key it sends only versions above the last one
 * sent (and at least start_version), so a catch-up and the live events it overlaps never show a key going back.
 */
public final class Watcher {
    private final String prefix;
    private final long startVersion;
    private final ServerCallStreamObserver<WatchResponse> observer;
    private final int bufferLimit;
    private final Consumer<Watcher> onClose;
    private final ArrayDeque<WatchResponse> buffer = new ArrayDeque<>();
    private final Map<String, Long> lastSent = new HashMap<>();
    private boolean paused = true;
    private boolean closed;

    Watcher(String prefix, long startVersion, ServerCallStreamObserver<WatchResponse> observer, int bufferLimit,
            Consumer<Watcher> onClose) {
        this.prefix = prefix;
        this.startVersion = startVersion;
        this.observer = observer;
        this.bufferLimit = bufferLimit;
        this.onClose = onClose;
    }

    String prefix() {
        return prefix;
    }

    /** Sends a catch-up event directly (the stream is paused, so nothing live overtakes it). */
    public synchronized void sendCatchUp(WatchResponse r) {
        if (!closed && admit(r)) {
            observer.onNext(r);
        }
    }

    /** Starts relaying live events, those buffered during the catch-up first. */
    public synchronized void resume() {
        paused = false;
        drain();
    }

    synchronized void offer(WatchResponse r) {
        if (closed) {
            return;
        }
        if (buffer.size() >= bufferLimit) {
            fail(Status.RESOURCE_EXHAUSTED.withDescription("watcher too slow: more than " + bufferLimit
                    + " events waiting; reconnect with start_version to resume"));
            return;
        }
        buffer.add(r);
        drain();
    }

    synchronized void drain() {
        while (!closed && !paused && observer.isReady()) {
            WatchResponse r = buffer.poll();
            if (r == null) {
                return;
            }
            if (admit(r)) {
                observer.onNext(r);
            }
        }
    }

    public synchronized void fail(Status status) {
        if (closed) {
            return;
        }
        closed = true;
        buffer.clear();
        try {
            observer.onError(status.asRuntimeException());
        } catch (RuntimeException ignored) {
            // the call is already cancelled
        }
        onClose.accept(this);
    }

    private boolean admit(WatchResponse r) {
        if (startVersion == 0) {
            return true; // live only: events of a key arrive in apply order already
        }
        if (r.getVersion() < startVersion) {
            return false;
        }
        Long last = lastSent.get(r.getKey());
        if (last != null && r.getVersion() <= last) {
            return false;
        }
        lastSent.put(r.getKey(), r.getVersion());
        return true;
    }
}
