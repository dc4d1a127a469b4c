"""Drain and verification: what the client was told, against what PostgreSQL, Redis and the API hold.

Per phase (operations sent while it ran):
  lost          acknowledged writes with no APPLIED row for their operation id and key in kv_oplog
  duplicated    request ids applied more than once, and applied rows that no request of this run asked for
  stale         reads older than a SYNC write acknowledged (status "applied") before the read started, outside a
                configured window after Redis accepts connections again (0: README allows none after a restart)
Over all keys, after the drain (each problem counted in the phase where it first shows):
  per-key versions 1..N without gaps and kv.version = N; real-time order (a write acknowledged before another
  was sent on the same key has the lower version); kv.value = the value of the write applied last; every read
  returns a (version, value) pair that was applied; Redis = PostgreSQL for every cached key; the API answers what
  PostgreSQL holds; the version in a SYNC "applied" answer is the applied one.
"""
from __future__ import annotations

import bisect
import re
import time
from collections import defaultdict
from dataclasses import dataclass

from context import Ctx, Phase
from history import BIG_VALUE, Read, Write, digest

CACHE_ENTRY = re.compile(r"(\d+):(\d+)\|([LT])\|[^|]*\|[^|]*\|[^|]*\|")   # epoch:version|L or T|times|value
PERMIT = re.compile(r"(\d+):(\d+):")   # a partition's cache permit: epoch:deadline (epoch ms):holder


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as java.util.zip.CRC32C: kvmesh's partition of a key is crc32c(key) mod partitions."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
API_CHECK_S = 120.0   # bound of the read-back of every key through the API
STALE_GRACE_S = 1.0   # measurement slack on top of README's window: "Redis accepts connections" is seen by polling


@dataclass(frozen=True)
class Row:
    id: str
    key: str
    kind: str
    version: int | None
    outcome: str
    request_id: str
    apply_time: float
    noop: bool          # applied without a change (a delete of a missing key: the oplog gives a reason)


class Verifier:
    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.stack = ctx.stack
        self.prefix = ctx.prefix
        self.reported: set[str] = set()   # global problems already counted in an earlier phase

    # ------------------------------------------------------------------ reading the stores

    def _where(self) -> str:
        return f"left(key, {len(self.prefix)}) = '{self.prefix}'"

    def oplog(self) -> list[Row]:
        rows = self.stack.psql(
            "SELECT id, key, kind, coalesce(version::text, ''), outcome, coalesce(request_id, ''),"
            f" extract(epoch from apply_time), coalesce(reason, '') <> '' FROM kv_oplog WHERE {self._where()}")
        return [Row(r[0], r[1], r[2], int(r[3]) if r[3] else None, r[4], r[5], float(r[6]), r[7] == "t")
                for r in rows]

    def table(self) -> dict[str, tuple[str | None, int]]:
        rows = self.stack.psql(
            f"SELECT key, version, value IS NULL, CASE WHEN length(value) <= {BIG_VALUE} THEN value"
            f" ELSE 'md5:' || md5(value) END FROM kv WHERE {self._where()}")
        return {r[0]: (None if r[2] == "t" else r[3], int(r[1])) for r in rows}

    def cache(self) -> tuple[dict[str, tuple[int, bool, str | None]], int]:
        """Cached entries of this run's keys that a read can hit -> (version, live, value digest); and how many did
        not parse. A read can hit an entry only in the namespace of the running Redis process (kvmesh names it after
        Redis's run_id, so that nothing from before a restart is read again) and under the epoch of its partition's
        cache permit in force (README, "Redis down"); every other entry is skipped: no read can reach it."""
        info = str(self.stack.redis("INFO", "server"))
        m = re.search(r"run_id:([0-9a-f]+)", info)
        run_id = m.group(1) if m else ""
        secs, micros = (int(x) for x in self.stack.redis("TIME"))
        now_ms = secs * 1000 + micros // 1000
        partitions = int(self.stack.env.get("KVMESH_PARTITIONS") or 1)
        epochs: dict[tuple[str, int], str | None] = {}   # (namespace head, partition) -> epoch in force

        def epoch_in_force(head: str, partition: int) -> str | None:
            if (head, partition) not in epochs:
                permit = self.stack.redis("GET", f"{head}p:{run_id[:12]}:{partition}")
                pm = PERMIT.match(str(permit)) if permit is not None else None
                epochs[(head, partition)] = pm.group(1) if pm and int(pm.group(2)) > now_ms else None
            return epochs[(head, partition)]

        out, bad = {}, 0
        for ck in self.stack.redis_scan(f"*{self.prefix}*"):
            namespace = ck[:ck.index(self.prefix)]
            tokens = re.findall(r"[0-9a-f]{8,40}", namespace)
            if tokens and not any(run_id.startswith(t) for t in tokens):
                continue
            raw = self.stack.redis("GET", ck)
            if raw is None:
                continue
            m = CACHE_ENTRY.match(raw)
            if not m:
                bad += 1
                continue
            key = ck[ck.index(self.prefix):]
            head = namespace[:namespace.rfind("v:")]   # e.g. "kv:" of "kv:v:<run>:"
            if m.group(1) != epoch_in_force(head, crc32c(key.encode()) % partitions):
                continue
            live = m.group(3) == "L"
            out[key] = (int(m.group(2)), live, digest(raw[m.end():]) if live else None)
        return out, bad

    # ------------------------------------------------------------------ drain

    def drain(self, bound_s: float) -> tuple[bool, float, int]:
        """Waits until every acknowledged write has its row in kv_oplog and the log stops growing (the consumer's
        cache retries included). -> (drained, seconds, acknowledged writes still missing)."""
        t0 = time.time()
        last_count, stable_since, missing = -1, time.time(), -1
        while time.time() - t0 < bound_s:
            writes, _, _ = self.ctx.history.snapshot()
            try:
                ids = {r.id for r in self.oplog()}
            except (RuntimeError, OSError):
                time.sleep(1)
                continue
            missing = sum(1 for w in writes if w.outcome == "acked" and w.op_id not in ids)
            if len(ids) != last_count:
                last_count, stable_since = len(ids), time.time()
            if missing == 0 and time.time() - stable_since >= 1.5:
                return True, round(time.time() - t0, 1), 0
            time.sleep(0.5)
        return False, round(time.time() - t0, 1), missing

    # ------------------------------------------------------------------ verification

    def verify(self, ph: Phase | None, t_from: float, t_to: float) -> dict:
        writes, reads, probes = self.ctx.history.snapshot()
        rows = self.oplog()
        kv = self.table()
        applied = [r for r in rows if r.outcome == "APPLIED"]
        by_id = {r.id: r for r in rows}
        by_rid: dict[str, list[Row]] = defaultdict(list)
        for r in applied:
            by_rid[r.request_id].append(r)
        writes_by_rid: dict[str, list[Write]] = defaultdict(list)
        for w in writes:
            writes_by_rid[w.rid].append(w)

        def applied_row(w: Write) -> Row | None:
            if w.op_id:
                r = by_id.get(w.op_id)
                return r if r and r.outcome == "APPLIED" and r.key == w.key else None
            return next((r for r in by_rid.get(w.rid, []) if r.key == w.key), None)

        def written_value(r: Row) -> tuple[bool, str | None]:
            """-> (known, value digest) of the write that produced row R."""
            if r.kind == "DELETE":
                return True, None
            ws = [w for w in writes_by_rid.get(r.request_id, []) if w.key == r.key and w.kind == "PUT"]
            ws.sort(key=lambda w: (w.op_id != r.id,))   # prefer the write that was told this operation id
            return (True, ws[0].value) if ws else (False, None)

        in_window = [w for w in writes if t_from <= w.t_send < t_to]
        res: dict = {"acked": 0, "failed": 0, "unknown": 0, "sync_queued": 0, "failed_applied": 0,
                     "unknown_applied": 0, "lost": 0, "duplicated": 0, "stale": 0, "stale_in_window": 0,
                     "reads": 0, "problems": []}
        problems: list[str] = []
        our_rids = set(writes_by_rid)

        # --- outcomes, lost, applied twice
        errors: dict[str, int] = defaultdict(int)
        for w in in_window:
            if w.source != "reuse":
                res[w.outcome] += 1
                if w.outcome != "acked":
                    errors[f"{w.outcome} {w.status}"] += 1
            row = applied_row(w)
            if w.outcome == "acked":
                if w.mode == "SYNC" and w.status == "queued":
                    res["sync_queued"] += 1
                if row is None:
                    res["lost"] += 1
                    other = by_id.get(w.op_id)
                    why = (f"its operation {w.op_id} is {other.outcome} for key {other.key}" if other
                           else f"operation {w.op_id} not in kv_oplog")
                    problems.append(f"lost: {w.kind} {w.key} rid {w.rid} acked {w.status}; {why}")
                elif w.version is not None and w.version != row.version:
                    problems.append(f"SYNC answer for {w.key} said applied as version {w.version}, "
                                    f"kv_oplog says {row.version}")
            elif row is not None:
                res[f"{w.outcome}_applied"] += 1
        for rid in {w.rid for w in in_window}:
            if len(by_rid.get(rid, [])) > 1:
                res["duplicated"] += len(by_rid[rid]) - 1
                problems.append(f"applied {len(by_rid[rid])} times: request id {rid} "
                                f"(versions {sorted(r.version for r in by_rid[rid])})")
        for r in applied:
            if r.request_id not in our_rids and t_from <= r.apply_time < t_to:
                res["duplicated"] += 1
                problems.append(f"applied without a request of this run: {r.kind} {r.key} v{r.version} "
                                f"(request id {r.request_id or '-'})")

        # --- reads: not older than acknowledged SYNC writes; (version, value) as applied
        floors: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
        for w in writes:
            if w.outcome == "acked" and w.status == "applied" and w.version is not None:
                floors[w.key].append((w.t_done, w.version, w.rid))
        floor_index = {}
        for key, lst in floors.items():
            lst.sort()
            times, best, running = [], [], (0, 0.0, "")
            for t, v, rid in lst:
                if v > running[0]:
                    running = (v, t, rid)
                times.append(t)
                best.append(running)
            floor_index[key] = (times, best)
        deleted_versions: dict[str, list[int]] = defaultdict(list)
        for r in applied:
            if r.kind == "DELETE" and r.version is not None:
                deleted_versions[r.key].append(r.version)
        window = self.ctx.cfg.redis_window_s
        windows = [(t, t + window + STALE_GRACE_S) for t in self.ctx.redis_up] if window > 0 else []

        def floor_at(key: str, t: float) -> tuple[int, float, str]:
            """The highest version acknowledged applied on KEY before T, when, and by which request."""
            times, best = floor_index.get(key, ([], []))
            i = bisect.bisect_left(times, t)
            return best[i - 1] if i else (0, 0.0, "")

        stale_examples: list[str] = []
        stale_keys: dict[str, int] = defaultdict(int)
        for rd in reads:
            if not (t_from <= rd.t_start < t_to) or rd.http not in (200, 404):
                continue
            res["reads"] += 1
            floor, t_ack, rid = floor_at(rd.key, rd.t_start)
            if rd.http == 200:
                stale = rd.version < floor
            else:
                stale = floor > 0 and not any(d >= floor for d in deleted_versions.get(rd.key, []))
            if stale:
                if any(a <= rd.t_start <= b for a, b in windows):
                    res["stale_in_window"] += 1
                else:
                    res["stale"] += 1
                    stale_keys[rd.key] += 1
                    if stale_keys[rd.key] == 1 and len(stale_examples) < 5:
                        earlier = " (a cache entry left from before this phase)" if t_ack < t_from else ""
                        got = f"v{rd.version}" if rd.http == 200 else "404"
                        stale_examples.append(
                            f"stale read{earlier}: {rd.key} returned {got} "
                            f"from {rd.served_by or '?'} at {_clock(rd.t_start)}, {rd.t_start - t_ack:.2f}s after "
                            f"v{floor} was acknowledged applied (request id {rid})")
            if rd.http == 200:
                bad = self._read_mismatch(rd, writes_by_rid, applied_row)
                if bad:
                    problems.append(bad)
        problems.extend(stale_examples)
        if stale_keys:
            problems.append(f"stale reads per key: " + ", ".join(f"{k.removeprefix(self.prefix)} {n}" for k, n in
                                                                 sorted(stale_keys.items(), key=lambda kv: -kv[1])[:10])
                            + (" ..." if len(stale_keys) > 10 else ""))

        # --- global: versions, order, final values, Redis, API
        new = self._global(ph, writes, applied, kv, applied_row, written_value, t_from, t_to)
        problems.extend(new)
        res["unavailable_s"] = unavailable(probes, ph.t_inject or ph.t_start, t_to) if ph else None
        res["problems"] = problems
        res["errors"] = dict(sorted(errors.items(), key=lambda kv: -kv[1]))
        return res

    def _read_mismatch(self, rd: Read, writes_by_rid, applied_row) -> str | None:
        if rd.value is None or rd.value.startswith("md5:") or "|" not in rd.value:
            return None
        rid = rd.value.split("|", 1)[0]
        ws = [w for w in writes_by_rid.get(rid, []) if w.key == rd.key]
        if not ws:
            return None   # not a value of the load (e.g. the reuse probe's)
        rows = [r for r in (applied_row(w) for w in ws) if r]
        if not rows:
            return f"read {rd.key} v{rd.version}: a value whose write was never applied (rid {rid})"
        if all(r.version != rd.version for r in rows):
            return f"read {rd.key} v{rd.version}: value of the write applied as v{rows[0].version} (rid {rid})"
        return None

    def _global(self, ph, writes, applied, kv, applied_row, written_value, t_from, t_to) -> list[str]:
        found: list[str] = []
        by_key: dict[str, list] = defaultdict(list)
        for r in applied:
            if r.version is not None and not r.noop:
                by_key[r.key].append(r)
        for key, rs in by_key.items():
            vs = sorted(r.version for r in rs)
            if vs != list(range(1, len(vs) + 1)):
                found.append(f"versions of {key} not 1..{len(vs)}: {_ranges(vs)}")
            row = next(r for r in rs if r.version == vs[-1])
            if key not in kv or kv[key][1] != vs[-1]:
                found.append(f"kv.version of {key} is {kv.get(key, (None, None))[1]}, last applied {vs[-1]}")
                continue
            known, value = written_value(row)
            if known and kv[key][0] != value:
                found.append(f"kv.value of {key} is not the value of the write applied last (v{vs[-1]})")
        # real-time order: acked A answered before B was sent, same key -> version(A) < version(B)
        per_key: dict[str, list[tuple[Write, int]]] = defaultdict(list)
        for w in writes:
            row = applied_row(w)
            if row is not None and row.version is not None:
                per_key[w.key].append((w, row.version))
        for key, lst in per_key.items():
            acks = sorted(((w.t_done, v) for w, v in lst if w.outcome == "acked"), key=lambda x: x[0])
            i, best = 0, 0
            for w, v in sorted(lst, key=lambda x: x[0].t_send):
                while i < len(acks) and acks[i][0] < w.t_send:
                    best = max(best, acks[i][1])
                    i += 1
                if v < best and t_from <= w.t_send < t_to:   # v == best is the same write (a retry)
                    found.append(f"order: {key} write {w.rid} sent after v{best} was acknowledged got v{v}")
        # Redis = PostgreSQL
        try:
            cache, unreadable = self.cache()
            if unreadable:
                found.append(f"{unreadable} cache entries in an unknown format (checker needs updating?)")
            for key, (ver, live, value) in cache.items():
                pg = kv.get(key)
                if pg is None:
                    if live:
                        found.append(f"redis holds {key} v{ver}, PostgreSQL has no such key")
                elif ver != pg[1] or live != (pg[0] is not None) or (live and value != pg[0]):
                    found.append(f"redis {key} v{ver}{'' if live else ' (deleted)'} != PostgreSQL v{pg[1]}")
        except Exception as e:   # noqa: BLE001 - Redis down at the end of a phase is itself a finding
            found.append(f"could not read Redis after the drain: {e}")
        # the API answers what PostgreSQL holds
        keys = sorted({w.key for w in writes} | set(kv))
        deadline = time.time() + API_CHECK_S
        for n, key in enumerate(keys):
            if time.time() > deadline:
                found.append(f"API GET check incomplete: {len(keys) - n} of {len(keys)} keys not read in "
                             f"{API_CHECK_S:.0f}s")
                break
            a = self.ctx.api.get(key, "kv", timeout=10)
            pg = kv.get(key)
            if a.status == 404:
                ok = pg is None or pg[0] is None
            elif a.status == 200 and a.body:
                d = a.body.get("data", {})
                ok = pg is not None and int(d.get("version", -1)) == pg[1] and digest(d.get("value")) == pg[0]
            else:
                ok = False
            if not ok:
                got = f"v{a.body['data'].get('version')} from {a.body.get('source')}" if a.status == 200 and a.body \
                    else f"{a.status or a.error}"
                found.append(f"API GET {key}: {got}, PostgreSQL {'v' + str(pg[1]) if pg else 'none'}")
        fresh = [f for f in found if f not in self.reported]
        self.reported.update(found)
        persisting = len(found) - len(fresh)
        if persisting and ph is not None:
            ph.note(f"{persisting} problem(s) reported in an earlier phase still present")
        return fresh


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def unavailable(probes, t_from: float, t_to: float) -> float:
    """Seconds in [t_from, t_to) during which the availability probe failed."""
    ps = [p for p in probes if t_from <= p.t_start < t_to]
    total = 0.0
    for i, p in enumerate(ps):
        if not p.ok:
            nxt = ps[i + 1].t_start if i + 1 < len(ps) else min(t_to, p.t_done)
            total += max(0.0, nxt - p.t_start)
    return round(total, 1)


def _ranges(vs: list[int]) -> str:
    out, start = [], None
    for i, v in enumerate(vs):
        if start is None:
            start = v
        if i + 1 == len(vs) or vs[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ",".join(out[:8]) + (" ..." if len(out) > 8 else "")
