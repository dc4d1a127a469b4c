package io.kvmesh.service.write;

import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.OplogRow;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * Looks up operation log rows by id, coalescing concurrent lookups into one query: while a query runs, the ids asked
 * for meanwhile wait and go together in the next one (the same group commit as the publisher's). Under load a write
 * pays a small share of one query instead of a query of its own; an idle replica asks at once.
 */
final class OplogLookups {
    private static final int MAX_IDS = 500;

    private record Ask(String id, CompletableFuture<OplogRow> row) {
    }

    private final KvStore store;
    private final Executor dbExecutor;
    private final List<Ask> waiting = new ArrayList<>();
    private boolean running;

    OplogLookups(KvStore store, Executor dbExecutor) {
        this.store = store;
        this.dbExecutor = dbExecutor;
    }

    /** The row of operation {@code id}, or null when the log has none. */
    CompletableFuture<OplogRow> find(String id) {
        CompletableFuture<OplogRow> row = new CompletableFuture<>();
        boolean start;
        synchronized (this) {
            waiting.add(new Ask(id, row));
            start = !running;
            running = true;
        }
        if (start) {
            dbExecutor.execute(this::drain);
        }
        return row;
    }

    private void drain() {
        while (true) {
            List<Ask> batch;
            synchronized (this) {
                if (waiting.isEmpty()) {
                    running = false;
                    return;
                }
                int n = Math.min(MAX_IDS, waiting.size());
                batch = new ArrayList<>(waiting.subList(0, n));
                waiting.subList(0, n).clear();
            }
            try {
                Map<String, OplogRow> found = new HashMap<>();
                for (OplogRow r : store.findOperations(batch.stream().map(Ask::id).toList())) {
                    found.put(r.id(), r);
                }
                batch.forEach(a -> a.row().complete(found.get(a.id())));
            } catch (RuntimeException e) {
                batch.forEach(a -> a.row().completeExceptionally(e));
            }
        }
    }
}
