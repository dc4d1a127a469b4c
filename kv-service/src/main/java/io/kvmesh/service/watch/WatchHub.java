package io.kvmesh.service.watch;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.ChangeEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Instant;
import java.util.Comparator;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Watch streams of this replica. Each applied change goes to every watcher whose prefix matches; each watcher
 * holds what its client has not read, bounded in events and bytes, so a slow watcher never slows the others: over
 * its bounds its stream ends with RESOURCE_EXHAUSTED and the client may resume with start_version. The replica's
 * total is bounded too: past it, the watcher holding the most is closed, so no number of slow clients can exhaust
 * the heap. Streams that asked for it get a PROGRESS event after each quiet interval.
 */
public final class WatchHub {
    private static final Logger log = LoggerFactory.getLogger(WatchHub.class);

    private final Set<Watcher> watchers = ConcurrentHashMap.newKeySet();
    private final WatchLimits limits;
    private final AtomicLong bufferedBytes = new AtomicLong();

    public WatchHub(WatchLimits limits, ScheduledExecutorService timer) {
        this.limits = limits;
        long interval = limits.progressInterval().toNanos();
        if (interval > 0) {
            long tick = Math.max(1, limits.progressInterval().toMillis() / 4);
            timer.scheduleWithFixedDelay(() -> progress(interval), tick, tick, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Registers a stream; it receives live events from now on. With a {@code catchUp} (a resumed stream) those wait
     * until the catch-up has been sent.
     */
    public Watcher register(String prefix, long startVersion, boolean progressNotify,
                            ServerCallStreamObserver<WatchResponse> observer, Watcher.CatchUp catchUp) {
        Watcher w = new Watcher(prefix, startVersion, progressNotify, observer, limits, this, catchUp);
        observer.setOnCancelHandler(() -> {
            w.cancelled();
            remove(w);
        });
        observer.setOnReadyHandler(w::drain);
        watchers.add(w);
        w.drain();
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
                shedWhileOverLimit();
            }
        }
    }

    /** Bytes all watchers of this replica hold for their clients. */
    public long bufferedBytes() {
        return bufferedBytes.get();
    }

    /** Open streams. */
    public int size() {
        return watchers.size();
    }

    /** Ends every stream (replica shutting down): clients reconnect to another replica and resume. */
    public void closeAll() {
        for (Watcher w : watchers) {
            w.fail(Status.UNAVAILABLE.withDescription("replica shutting down; resume with start_version"));
        }
        watchers.clear();
    }

    void buffered(long delta) {
        bufferedBytes.addAndGet(delta);
    }

    void remove(Watcher w) {
        if (watchers.remove(w)) {
            log.debug("watcher on '{}' gone ({} left)", w.prefix(), watchers.size());
        }
    }

    /** Closes the watchers holding the most until the replica's total is within its bound. */
    private void shedWhileOverLimit() {
        while (bufferedBytes.get() > limits.replicaBytes()) {
            Watcher largest = watchers.stream().max(Comparator.comparingLong(Watcher::bufferedBytes)).orElse(null);
            if (largest == null || largest.bufferedBytes() == 0) {
                return;
            }
            log.warn("watchers hold {} bytes (limit {}): closing the slowest, on '{}'", bufferedBytes.get(),
                    limits.replicaBytes(), largest.prefix());
            largest.fail(Status.RESOURCE_EXHAUSTED.withDescription("watcher too slow: this replica holds more than "
                    + limits.replicaBytes() + " bytes for slow watchers; reconnect with start_version to resume"));
        }
    }

    private void progress(long intervalNanos) {
        long now = System.nanoTime();
        for (Watcher w : watchers) {
            if (w.wantsProgress()) {
                w.progressIfQuiet(now, intervalNanos);
            }
        }
    }

    static WatchResponse toResponse(ChangeEvent e) {
        EventType type = switch (e.getKind()) {
            case PUT -> EventType.PUT;
            case DELETE -> EventType.DELETE;
            case EXPIRE -> EventType.EXPIRE;
            default -> EventType.EVENT_TYPE_UNSPECIFIED;
        };
        Instant time = Micros.toInstant(e.getTimeMicros());
        return WatchResponse.newBuilder().setType(type).setKey(e.getKey()).setValue(e.getValue())
                .setVersion(e.getVersion()).setOperationId(e.getOperationId())
                .setTime(com.google.protobuf.Timestamp.newBuilder().setSeconds(time.getEpochSecond())
                        .setNanos(time.getNano()))
                .build();
    }
}
