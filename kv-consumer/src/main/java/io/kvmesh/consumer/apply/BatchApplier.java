package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.queue.RequestHash;
import io.kvmesh.core.store.Change;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.ChangeEvent;
import io.kvmesh.queue.v1.Operation;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Applies a batch of operations, in queue order, in one transaction: locks the rows of the batch's keys, recognises
 * operations whose id is already in the operation log (and replays their recorded outcome as an event), folds the
 * rest per key in memory (version = previous + 1, conditions checked against the state at that point), then writes
 * one row per key and one log row per operation, in one statement ({@link io.kvmesh.core.store.ApplyTransaction}).
 */
public final class BatchApplier implements Applier {
    private static final Logger LOG = LoggerFactory.getLogger(BatchApplier.class);
    private final KvStore store;

    public BatchApplier(KvStore store) {
        this.store = store;
    }

    @Override
    public ApplyResult apply(List<Operation> ops, Instant now) {
        if (ops.isEmpty()) {
            return ApplyResult.EMPTY;
        }
        Set<String> keys = new TreeSet<>();
        List<String> ids = new ArrayList<>(ops.size());
        for (Operation op : ops) {
            keys.add(op.getKey());
            ids.add(op.getId());
        }
        return store.inApplyTransaction(tx -> {
            Map<String, Entry> state = new HashMap<>();
            for (Entry e : tx.lockAll(keys.toArray(String[]::new))) {
                state.put(e.key(), e);
            }
            Map<String, OplogRow> known = new HashMap<>();
            for (OplogRow row : tx.knownOperations(ids.toArray(String[]::new))) {
                known.put(row.id(), row);
            }
            Set<String> seen = new HashSet<>();
            Map<String, Change> changed = new TreeMap<>();
            Set<String> replayedKeys = new TreeSet<>();
            List<OplogRow> log = new ArrayList<>(ops.size());
            List<ChangeEvent> events = new ArrayList<>(ops.size());
            int duplicates = 0;
            int rejected = 0;
            for (Operation op : ops) {
                if (!seen.add(op.getId()) || known.containsKey(op.getId())) {
                    duplicates++;
                    OplogRow before = known.get(op.getId());
                    if (before != null) {
                        if (!RequestHash.sameRequest(before.requestHash(), op.getRequestHash())) {
                            // operation ids derive from the request id and the fingerprint, and the replicas record a
                            // request id before publishing, so only a message of an older replica (ids from the request
                            // id alone) can get here; it cannot apply under the same id
                            LOG.warn("operation {} (request id '{}') repeats an id used for a different request; "
                                    + "not applied", op.getId(), op.getRequestId());
                        }
                        events.add(Events.replay(before));
                    }
                    // the applier that committed it may have died before writing the cache (this is why it is
                    // redelivered): the key's current state goes to the cache again, or a SYNC answer replayed from
                    // the log would be followed by reads of the older cached version
                    replayedKeys.add(op.getKey());
                    continue;
                }
                Entry current = state.getOrDefault(op.getKey(), Entry.absent(op.getKey()));
                Outcome outcome = decide(op, current, now);
                OperationKind kind = OperationKind.of(op.getKind());
                OplogRow row = new OplogRow(op.getId(), op.getKey(), kind, outcome.version(),
                        outcome.outcome(), outcome.reason(), op.getRequestId().isEmpty() ? null : op.getRequestId(),
                        op.getRequestHash().isEmpty() ? null : op.getRequestHash(),
                        Micros.toInstant(op.getAcceptTimeMicros()), now);
                log.add(row);
                if (outcome.outcome() == OperationOutcome.REJECTED) {
                    rejected++;
                }
                if (outcome.next() != null) {
                    state.put(op.getKey(), outcome.next());
                    changed.put(op.getKey(), new Change(outcome.next(), op.getId(), kind));
                    events.add(Events.changed(op.getId(), kind.toEvent(), outcome.next(), now));
                } else {
                    events.add(Events.replay(row).toBuilder().setReplayed(false).build());
                }
            }
            tx.write(changed.values(), log);
            Set<String> toCache = new TreeSet<>(changed.keySet());
            toCache.addAll(replayedKeys);
            List<Entry> cache = toCache.stream().map(state::get).filter(Objects::nonNull).toList();
            return new ApplyResult(cache, events, log.size(), rejected, duplicates);
        });
    }

    /**
     * The result of one operation against the key's current state: the new state ({@code null} = unchanged),
     * APPLIED or REJECTED, the version (after the operation; for a rejection, the version it met) and a reason (why
     * it was rejected, or why nothing changed).
     */
    record Outcome(Entry next, OperationOutcome outcome, Long version, String reason) {
    }

    static Outcome decide(Operation op, Entry current, Instant now) {
        boolean live = current.isLiveAt(now);
        long visibleVersion = live ? current.version() : 0;
        if (op.hasExpectedVersion() && op.getExpectedVersion() != visibleVersion) {
            return new Outcome(null, OperationOutcome.REJECTED, visibleVersion, "version conflict: expected version "
                    + op.getExpectedVersion() + ", current version " + visibleVersion);
        }
        return switch (op.getKind()) {
            case PUT -> {
                Instant expire = op.getTtlMillis() > 0 ? now.plusMillis(op.getTtlMillis()) : null;
                Entry next = new Entry(op.getKey(), op.getValue(), current.version() + 1,
                        live ? current.createTime() : now, now, expire);
                yield new Outcome(next, OperationOutcome.APPLIED, next.version(), null);
            }
            case DELETE -> {
                if (current.value() == null) {
                    // never written, or deleted already: nothing to change, and the version stays
                    yield new Outcome(null, OperationOutcome.APPLIED, current.version(), "key did not exist");
                }
                Entry tombstone = new Entry(op.getKey(), null, current.version() + 1, current.createTime(), now, null);
                yield new Outcome(tombstone, OperationOutcome.APPLIED, tombstone.version(), null);
            }
            default -> throw new IllegalArgumentException("unknown operation kind " + op.getKind());
        };
    }
}
