package io.kvmesh.service.write;

import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.RequestIdRow;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * Records request ids in {@code kv_request_id}, coalescing concurrent claims into one transaction: while one runs,
 * the claims made meanwhile wait and go together in the next (the same group commit as the publisher's). Under load
 * a write with a request id pays a share of one commit instead of a commit of its own; an idle replica claims at once.
 */
final class RequestIdClaims {
    private static final int MAX_CLAIMS = 500;

    private record Ask(RequestIdRow claim, CompletableFuture<RequestIdRow> holder) {
    }

    private final KvStore store;
    private final Executor dbExecutor;
    private final List<Ask> waiting = new ArrayList<>();
    private boolean running;

    RequestIdClaims(KvStore store, Executor dbExecutor) {
        this.store = store;
        this.dbExecutor = dbExecutor;
    }

    /** Records {@code claim} unless its request id is held; completes with the request that holds the id. */
    CompletableFuture<RequestIdRow> claim(RequestIdRow claim) {
        CompletableFuture<RequestIdRow> holder = new CompletableFuture<>();
        boolean start;
        synchronized (this) {
            waiting.add(new Ask(claim, holder));
            start = !running;
            running = true;
        }
        if (start) {
            try {
                dbExecutor.execute(this::drain);
            } catch (RuntimeException e) { // the executor refused (shutting down): nobody else will drain
                synchronized (this) {
                    running = false;
                }
                holder.completeExceptionally(e);
            }
        }
        return holder;
    }

    private void drain() {
        while (true) {
            List<Ask> batch;
            synchronized (this) {
                if (waiting.isEmpty()) {
                    running = false;
                    return;
                }
                int n = Math.min(MAX_CLAIMS, waiting.size());
                batch = new ArrayList<>(waiting.subList(0, n));
                waiting.subList(0, n).clear();
            }
            try {
                Map<String, RequestIdRow> holders = store.claimRequestIds(batch.stream().map(Ask::claim).toList());
                for (Ask a : batch) {
                    RequestIdRow h = holders.get(a.claim().requestId());
                    if (h == null) {
                        a.holder().completeExceptionally(new IllegalStateException(
                                "request id " + a.claim().requestId() + " neither recorded nor held"));
                    } else {
                        a.holder().complete(h);
                    }
                }
            } catch (RuntimeException e) {
                batch.forEach(a -> a.holder().completeExceptionally(e));
            }
        }
    }
}
