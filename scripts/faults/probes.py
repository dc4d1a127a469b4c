"""Targeted probes that the random load would hit only by chance:

- cold keys: written SYNC before and during a Redis fault and then left alone, read back after Redis returns, so a
  cache that comes back holding an older version is seen whatever the load does (issue 9, bug 4);
- a slow Watch client that never reads while large values are written under its prefix (bug 2);
- a request id reused for a different request (bug 1), also after Redis lost everything while the first write was
  still queued, on a key of another partition (issue 17: the first, acknowledged write was once the one lost).
"""
from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import urllib.parse

from api import open_raw_stream
from context import Ctx, Phase
from h2watch import SlowGrpcWatch
from load import make_value, read_once, write_once

MB = 1 << 20
# README: KVMESH_WATCH_BUFFER_BYTES (16 MiB) per watcher; sockets and proxies may hold a few MB more in between
WATCH_BOUND = int(os.environ.get("KVMESH_WATCH_BUFFER_BYTES", 16 * MB))
TRANSPORT_SLACK = 8 * MB
IDLE_S = 10.0   # a watcher's stream that sends nothing and does not end for this long after the writes is open


# ---------------------------------------------------------------------- cold keys

def cold_put(ctx: Ctx, ph: Phase, tag: str, keys: list[str] | None = None) -> list[str]:
    """One SYNC put to each cold key of this phase; returns the keys."""
    keys = keys or [f"{ctx.prefix}cold/{ph.id}/{i:02d}" for i in range(ctx.cfg.cold_keys)]
    rng = random.Random(hash((ph.id, tag)))
    acked = 0
    for i, key in enumerate(keys):
        rid = f"{ctx.run_id}-c-{ph.id}-{tag}-{i}"
        w = write_once(ctx.api, ctx.history, key=key, kind="PUT", value=make_value(rid, rng, 32), rid=rid,
                       mode="SYNC", family="api", source="cold", timeout=10)
        acked += w.outcome == "acked"
    ph.note(f"cold keys {tag}: {acked}/{len(keys)} SYNC puts acknowledged")
    return keys


def cold_read(ctx: Ctx, keys: list[str], seconds: float) -> None:
    """Reads every cold key again and again for SECONDS (the verification judges each read)."""
    end = time.time() + seconds
    while time.time() < end and not ctx.load.control.stopped.is_set():
        for key in keys:
            read_once(ctx.api, ctx.history, key, "kv", "cold", timeout=5)
        time.sleep(0.1)


# ---------------------------------------------------------------------- slow watcher

def _rss_mb(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return None


def _drain(sock: socket.socket, idle_s: float, max_s: float) -> tuple[bool, int, str]:
    """Reads what the server has for the watcher -> (ended, bytes, last line); ended = the server closed it."""
    sock.settimeout(idle_s)
    total, tail, end = 0, b"", time.time() + max_s
    while time.time() < end:
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            return False, total, _last_line(tail)
        except OSError:
            return True, total, _last_line(tail)
        if not chunk:
            return True, total, _last_line(tail)
        total += len(chunk)
        tail = (tail + chunk)[-4096:]
    return False, total, _last_line(tail)


def _last_line(tail: bytes) -> str:
    """How the NDJSON stream ended: an error object, a whole event, or cut in the middle of one."""
    body = tail.rstrip(b"\r\n0")   # chunked encoding's terminator, if any
    last = body.rsplit(b"\n", 1)[-1].strip()
    if not last:
        return "-"
    try:
        obj = json.loads(last)
    except ValueError:
        return "cut in the middle of an event"
    if isinstance(obj, dict) and "code" in obj:
        return f"error {obj.get('code')}: {str(obj.get('message'))[:120]}"
    return "a whole event, then the end" if isinstance(obj, dict) and "type" in obj else "?"


def slow_watcher(ctx: Ctx, ph: Phase) -> None:
    cfg, stack = ctx.cfg, ctx.stack
    prefix = f"{ctx.prefix}slow/"
    replicas = [p for p in stack.parts() if p.startswith("kv-service-")]
    pids = {p: stack.find_pid(p) for p in replicas}
    envoy = stack.find_pid("envoy")
    rss0 = {p: _rss_mb(pid) for p, pid in pids.items()} | {"envoy": _rss_mb(envoy)}
    sock = open_raw_stream(stack.http_port, "/kv/watch?" + urllib.parse.urlencode({"prefix": prefix}))
    grpc = SlowGrpcWatch(stack.envoy_port, prefix)
    ph.t_inject = time.time()
    ph.note(f"two slow watchers on {prefix}, neither reads: REST through nginx (4 KB receive buffer) and native "
            "gRPC to Envoy (64 KB HTTP/2 window, never updated)")
    time.sleep(1.0)

    stop = threading.Event()
    sent = {"n": 0, "acked": 0}
    lock = threading.Lock()
    size, budget = cfg.slow_value_bytes, cfg.slow_total_bytes // cfg.slow_value_bytes

    def writer(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            with lock:
                if sent["n"] >= budget:
                    return
                sent["n"] += 1
                n = sent["n"]
            rid = f"{ctx.run_id}-s-{n}"
            w = write_once(ctx.api, ctx.history, key=f"{prefix}{n % 8}", kind="PUT", value=make_value(rid, rng, size),
                           rid=rid, mode="ASYNC", family="kv", source="slow", timeout=20)
            with lock:
                sent["acked"] += w.outcome == "acked"

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(2)]
    t0 = time.time()
    for t in threads:
        t.start()
    died = {}
    while any(t.is_alive() for t in threads):
        for p, pid in pids.items():
            if p not in died and (pid is None or stack.find_pid(p) != pid):
                died[p] = round(time.time() - t0, 1)
                ph.note(f"{p} (pid {pid}) DIED {died[p]}s into the large writes")
        if died or time.time() - t0 > cfg.slow_time_s:
            stop.set()
        time.sleep(0.5)
    for t in threads:
        t.join(25)
    secs = time.time() - t0
    ph.note(f"wrote {sent['acked']} of {sent['n']} values of {size // 1024} KB acknowledged "
            f"({sent['acked'] * size / MB:.0f} MB) in {secs:.0f}s")
    rss1 = {p: _rss_mb(pid) for p, pid in pids.items()} | {"envoy": _rss_mb(stack.find_pid('envoy'))}
    ph.note("resident memory (MB) before -> after: " + ", ".join(
        f"{p} {rss0[p]:.0f} -> {rss1[p]:.0f}" if rss0.get(p) and rss1.get(p) else f"{p} ? -> ?" for p in rss0))

    written = sent["acked"] * size / MB
    ended, nbytes, last = _drain(sock, idle_s=IDLE_S, max_s=40)
    sock.close()
    g_ended, g_bytes, how_g = grpc.drain(idle_s=IDLE_S, max_s=40)
    grpc.close()
    ph.check("replicas survive", not died, ", ".join(f"{p} died after {s}s" for p, s in died.items()))
    # README: what a watcher that stopped reading holds is bounded per watcher in bytes; past the bound it is closed.
    # Allowed: the bound plus what sockets and proxies legitimately hold in between.
    limit = WATCH_BOUND + TRANSPORT_SLACK
    for name, end, got, how in (("REST", ended, nbytes, f"last line: {last}"), ("gRPC", g_ended, g_bytes, how_g)):
        held_ok = got <= limit
        must_end = written * MB > limit
        state = "stream ended" if end else f"stream still open ({IDLE_S:.0f}s without data or end)"
        ph.check(f"{name} slow watcher closed within its byte bound", held_ok and (end or not must_end),
                 f"{state} after the client found {got / MB:.1f} MB "
                 f"waiting for it ({written:.0f} MB written; allowed {WATCH_BOUND / MB:.0f} MiB per watcher + "
                 f"{TRANSPORT_SLACK / MB:.0f} MiB in transit); {how}")

    # the replicas still do their whole job: SYNC writes answer "applied" (not "queued" after the sync timeout)
    rng = random.Random(7)
    answers = []
    for i in range(10):
        rid = f"{ctx.run_id}-sa-{i}"
        answers.append(write_once(ctx.api, ctx.history, key=f"{ctx.prefix}after-slow/{i}", kind="PUT",
                                  value=make_value(rid, rng, 16), rid=rid, mode="SYNC", family="kv", source="load",
                                  timeout=20).status)
    applied = answers.count("applied")
    others = sorted({a for a in answers if a != "applied"})
    ph.check("SYNC writes applied afterwards", applied == len(answers), f"{applied}/{len(answers)} answered applied"
             + (f" (others: {', '.join(others)})" if others else ""))
    if died:
        for p in died:
            if not ctx.await_recovery(ph, p, ph.t_inject, pids[p]):
                ctx.repair(ph, p, ph.t_inject)
    else:
        ph.recovered, ph.recovery_s = None, None


# ---------------------------------------------------------------------- request id reuse

def request_id_reuse(ctx: Ctx, ph: Phase) -> None:
    """The same request id: an identical retry gets the first operation id; any other request with it is refused
    with a 4xx error (never "queued" and then dropped)."""
    base = f"{ctx.prefix}rid/"
    api, h = ctx.api, ctx.history
    ph.t_inject = time.time()

    def put(key, value, rid, body=True, headers=None, family="kv"):
        w = write_once(api, h, key=key, kind="PUT", value=value, rid=rid, mode="SYNC", family=family,
                       source="reuse", headers=headers, rid_in_body=body)
        return w

    def refused(w) -> bool:
        return w.outcome == "failed" and w.status[:1] == "4"

    def show(w) -> str:
        return f"{w.outcome} {w.status}{' ' + w.op_id if w.op_id else ''}"

    # request id in the body (both route families)
    rid = f"{ctx.run_id}-reuse-body"
    first = put(base + "a", "a-1", rid)
    again = put(base + "a", "a-1", rid)
    ph.check("identical retry gets the same operation id", first.outcome == again.outcome == "acked"
             and first.op_id == again.op_id, f"first {show(first)}, retry {show(again)}")
    other_key = put(base + "b", "a-1", rid)
    ph.check("same id, other key: refused 4xx", refused(other_key), show(other_key))
    other_value = put(base + "a", "a-2", rid, family="api")
    ph.check("same id, other value: refused 4xx", refused(other_value), show(other_value))
    as_delete = write_once(api, h, key=base + "a", kind="DELETE", value=None, rid=rid, mode="SYNC", family="kv",
                           source="reuse")
    ph.check("same id, a delete: refused 4xx", refused(as_delete), show(as_delete))

    # request id in the x-request-id header
    hid = f"{ctx.run_id}-reuse-header"
    hdr = {"x-request-id": hid}
    h1 = put(base + "c", "c-1", hid, body=False, headers=hdr)
    h2 = put(base + "c", "c-1", hid, body=False, headers=hdr)
    ph.check("x-request-id: identical retry, same operation id", h1.outcome == h2.outcome == "acked"
             and h1.op_id == h2.op_id, f"first {show(h1)}, retry {show(h2)}")
    h3 = put(base + "d", "c-1", hid, body=False, headers=hdr)
    ph.check("x-request-id: same id, other key: refused 4xx", refused(h3), show(h3))

    # the standard Idempotency-Key header (README: the same as a body requestId)
    iid = f"{ctx.run_id}-reuse-idem"
    idem = {"Idempotency-Key": iid}
    i1 = put(base + "e", "e-1", iid, body=False, headers=idem)
    i2 = put(base + "e", "e-1", iid, body=False, headers=idem)
    ph.check("Idempotency-Key: identical retry, same operation id", i1.outcome == i2.outcome == "acked"
             and i1.op_id == i2.op_id, f"first {show(i1)}, retry {show(i2)}")
    i3 = put(base + "f", "e-1", iid, body=False, headers=idem, family="api")
    ph.check("Idempotency-Key: same id, other key: refused 4xx", refused(i3), show(i3))

    # nothing a refused (or wrongly accepted) write asked for happened: the first writes stand, the others are absent
    time.sleep(2.0)
    expect = {"a": ("a-1", 1), "b": None, "c": ("c-1", 1), "d": None, "e": ("e-1", 1), "f": None}
    wrong = []
    for name, want in expect.items():
        a = api.get(base + name)
        got = ((a.body or {}).get("data", {}).get("value"), int((a.body or {}).get("data", {}).get("version", 0))) \
            if a.status == 200 else None if a.status == 404 else f"HTTP {a.status or a.error}"
        if got != want:
            wrong.append(f"{name}: {got if got is not None else 'absent'} (expected {want or 'absent'})")
    ph.check("reused ids changed nothing", not wrong, "; ".join(wrong))
    ph.recovered, ph.recovery_s = None, None


# ---------------------------------------------------------------------- request id reuse, Redis emptied in between

def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as java.util.zip.CRC32C: the partition function's hash (kv-core Partitioner)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def partition_of(key: str, partitions: int) -> int:
    return _crc32c(key.encode("utf-8")) % partitions


def request_id_reuse_redis_lost(ctx: Ctx, ph: Phase) -> None:
    """The case that lost an acknowledged write (issue 17): the consumers stopped, a write with request id R
    acknowledged (queued), Redis emptied (FLUSHALL: a restart without its data), then another write with the same R
    to a key of another partition. The second must be refused (4xx REQUEST_ID_REUSED) and the first applied once
    the consumers are back: never acknowledged-and-skipped, never costing the first its place."""
    stack, api, h = ctx.stack, ctx.api, ctx.history
    try:   # the run folder's partition count (start.sh records it), else the services' default
        with open(os.path.join(stack.run_dir, "partitions"), encoding="utf-8") as f:
            partitions = int(f.read().strip())
    except (OSError, ValueError):
        partitions = int(os.environ.get("KVMESH_PARTITIONS", "8"))
    base = f"{ctx.prefix}rid-lost/"
    key_a = base + "a"
    # another partition when there are several (the case that lost a write); with one, both share its queue
    key_b = next(base + f"b{i}" for i in range(1000)
                 if partitions == 1 or partition_of(base + f"b{i}", partitions) != partition_of(key_a, partitions))
    consumers = [p for p in stack.parts() if p.startswith("kv-consumer-")]
    rid = f"{ctx.run_id}-reuse-lost"
    ph.t_inject = time.time()
    for c in consumers:
        ph.note(stack.stop_server(c))
    first = second = None
    try:
        first = write_once(api, h, key=key_a, kind="PUT", value="first", rid=rid, mode="ASYNC", family="kv",
                           source="reuse")
        ph.check("first write acknowledged while nothing applies", first.outcome == "acked"
                 and first.status == "queued", f"{first.outcome} {first.status} {first.op_id}")
        ph.note(f"Redis FLUSHALL: {stack.redis('FLUSHALL')}")
        second = write_once(api, h, key=key_b, kind="PUT", value="second", rid=rid, mode="ASYNC", family="kv",
                            source="reuse")
        ph.check("same id, other partition, Redis emptied: refused 4xx", second.outcome == "failed"
                 and second.status[:1] == "4", f"{second.outcome} {second.status} {second.op_id or ''} "
                 f"(partitions {partition_of(key_a, partitions)} and {partition_of(key_b, partitions)})")
    finally:
        for c in consumers:
            ph.note(stack.start_server(c))
    if not ctx.await_recovery(ph, None, time.time()):
        ph.note("the API did not serve again after the consumers started")
    ok, left = stack.wait_ops_queues_empty(60)
    ph.note("operation queues drained" if ok else f"operation queues not drained: {left}")
    got_a, got_b = api.get(key_a), api.get(key_b)
    value_a = (got_a.body or {}).get("data", {}).get("value") if got_a.status == 200 else None
    ph.check("the first write applied", value_a == "first", f"GET {key_a}: HTTP {got_a.status} {value_a!r}")
    ph.check("the second write absent", got_b.status == 404, f"GET {key_b}: HTTP {got_b.status}")
    if first is not None and first.op_id:
        op = api.operation(first.op_id)
        state = (op.body or {}).get("data", {}).get("state")
        ph.check("the first operation APPLIED", state == "APPLIED", f"GetOperation {first.op_id}: {op.status} {state}")
    ph.recovered, ph.recovery_s = None, None
