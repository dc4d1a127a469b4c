package io.kvmesh.service.watch;

import com.google.protobuf.Timestamp;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.WatchResponse;

import java.time.Instant;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * One Watch stream: what its client has not read yet, sent only as fast as the client reads (gRPC flow control:
 * nothing is handed to the transport while {@code isReady()} is false). Live events wait in a buffer bounded in
 * events and bytes; the catch-up of a resumed stream is read from the store a page at a time, the next page only
 * once the client has taken the previous one, so a slow client holds at most one page. Per key it sends only
 * versions above the last one sent (and at least start_version), so a catch-up and the live events it overlaps never
 * show a key going back.
 */
public final class Watcher {
    /** Reads the next page of a resumed stream's catch-up after a key; an empty page ends the catch-up. */
    @FunctionalInterface
    public interface CatchUp {
        CompletableFuture<List<WatchResponse>> pageAfter(String key);
    }

    private final String prefix;
    private final long startVersion;
    private final boolean progressNotify;
    private final ServerCallStreamObserver<WatchResponse> observer;
    private final WatchLimits limits;
    private final WatchHub hub;
    private final CatchUp catchUp;
    private final ArrayDeque<WatchResponse> live = new ArrayDeque<>();
    private final ArrayDeque<WatchResponse> page = new ArrayDeque<>();
    private final Map<String, Long> lastSent = new HashMap<>();
    private volatile long bufferedBytes;
    private String catchUpAfter = "";
    private boolean catchingUp;
    private boolean loading;
    private long lastSendNanos = System.nanoTime();
    private boolean closed;

    Watcher(String prefix, long startVersion, boolean progressNotify, ServerCallStreamObserver<WatchResponse> observer,
            WatchLimits limits, WatchHub hub, CatchUp catchUp) {
        this.prefix = prefix;
        this.startVersion = startVersion;
        this.progressNotify = progressNotify;
        this.observer = observer;
        this.limits = limits;
        this.hub = hub;
        this.catchUp = catchUp;
        this.catchingUp = catchUp != null;
    }

    String prefix() {
        return prefix;
    }

    boolean wantsProgress() {
        return progressNotify;
    }

    /** Bytes of live events waiting for this client. */
    long bufferedBytes() {
        return bufferedBytes;
    }

    /** Queues a live event; closes the stream if the client is too far behind to take it. */
    synchronized void offer(WatchResponse r) {
        if (closed) {
            return;
        }
        int size = r.getSerializedSize();
        if (live.size() >= limits.events() || bufferedBytes + size > limits.bytes()) {
            fail(Status.RESOURCE_EXHAUSTED.withDescription("watcher too slow: more than " + limits.events()
                    + " events or " + limits.bytes() + " bytes waiting; reconnect with start_version to resume"));
            return;
        }
        live.add(r);
        bufferedBytes += size;
        hub.buffered(size);
        drain();
    }

    /** Sends what the client can take now (also the transport's on-ready callback). */
    synchronized void drain() {
        while (!closed && observer.isReady()) {
            WatchResponse r;
            if (catchingUp) {
                r = page.poll();
                if (r == null) {
                    loadNextPage();
                    return;
                }
            } else {
                r = live.poll();
                if (r == null) {
                    return;
                }
                int size = r.getSerializedSize();
                bufferedBytes -= size;
                hub.buffered(-size);
            }
            if (admit(r)) {
                send(r);
            }
        }
    }

    /** Sends a PROGRESS event if the stream asked for them, has nothing waiting and was quiet for the interval. */
    synchronized void progressIfQuiet(long nowNanos, long intervalNanos) {
        if (closed || catchingUp || !live.isEmpty() || nowNanos - lastSendNanos < intervalNanos || !observer.isReady()) {
            return;
        }
        Instant now = Instant.now();
        send(WatchResponse.newBuilder().setType(EventType.PROGRESS)
                .setTime(Timestamp.newBuilder().setSeconds(now.getEpochSecond()).setNanos(now.getNano())).build());
    }

    /** Ends the stream with {@code status} (too slow, replica shutting down, catch-up failed). */
    public synchronized void fail(Status status) {
        if (closed) {
            return;
        }
        closed = true;
        hub.buffered(-bufferedBytes);
        bufferedBytes = 0;
        live.clear();
        page.clear();
        try {
            observer.onError(status.asRuntimeException());
        } catch (RuntimeException ignored) {
            // the call is already cancelled
        }
        hub.remove(this);
    }

    /** The client went away: forget what was waiting for it. */
    synchronized void cancelled() {
        if (!closed) {
            closed = true;
            hub.buffered(-bufferedBytes);
            bufferedBytes = 0;
            live.clear();
            page.clear();
        }
    }

    private void loadNextPage() {
        if (loading) {
            return;
        }
        loading = true;
        catchUp.pageAfter(catchUpAfter).whenComplete((rows, error) -> pageLoaded(rows, error));
    }

    private synchronized void pageLoaded(List<WatchResponse> rows, Throwable error) {
        loading = false;
        if (closed) {
            return;
        }
        if (error != null) {
            fail(Status.UNAVAILABLE.withDescription("could not read the catch-up; resume with start_version")
                    .withCause(error));
            return;
        }
        if (rows.isEmpty()) {
            catchingUp = false;
        } else {
            page.addAll(rows);
            catchUpAfter = rows.getLast().getKey();
        }
        drain();
    }

    private void send(WatchResponse r) {
        observer.onNext(r);
        lastSendNanos = System.nanoTime();
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
