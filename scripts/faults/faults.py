"""The fault schedule: one fault at a time, with the load running.

A kill fault sends SIGKILL to one process and then waits for the part to run again and the API to serve, with
nobody acting (DESIGN.md: within 15 s). If that does not happen within the wait, the suite acts as a person would
(./start.sh restart PART, or starts the server) so the next phases run on a whole stack, and says so.
A stop fault stops a server the way an operator does, keeps it down for a while, starts it again, and then waits
for kvmesh to serve again by itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable

from context import Ctx, Phase
from stack import wait_until
from backup import backup_restore
from probes import cold_put, cold_read, request_id_reuse, request_id_reuse_redis_lost, slow_watcher


@dataclass(frozen=True)
class Fault:
    id: str
    title: str
    kind: str                          # kill | stop | partition | pause | disk | probe
    run: Callable[[Ctx, Phase], None]
    quick: bool = False                # part of quick mode


# ---------------------------------------------------------------------- kill -9

def kill_part(ctx: Ctx, ph: Phase, part: str) -> tuple[int | None, float]:
    pid = ctx.stack.find_pid(part)
    if pid is None:
        ph.check("fault injected", False, f"no running process found for {part}")
        return None, time.time()
    ctx.stack.kill9(pid)
    t = time.time()
    ph.t_inject = t
    ph.note(f"kill -9 {part} (pid {pid})")
    return pid, t


def recover_or_repair(ctx: Ctx, ph: Phase, part: str, since: float, old_pid: int | None) -> None:
    if not ctx.await_recovery(ph, part, since, old_pid):
        ctx.repair(ph, part, since)


def kill(part: str | Callable[[Ctx], str]):
    def run(ctx: Ctx, ph: Phase) -> None:
        name = part(ctx) if callable(part) else part
        pid, t = kill_part(ctx, ph, name)
        if pid is not None:
            recover_or_repair(ctx, ph, name, t, pid)
    return run


def active_consumer(ctx: Ctx) -> str:
    name = ctx.stack.active_consumer()
    if name is None:
        print("[faults]     could not tell the active consumer from the broker; taking kv-consumer-1", flush=True)
        return "kv-consumer-1"
    print(f"[faults]     active consumer (most partition queues): {name}", flush=True)
    return name


def kill_nginx_master(ctx: Ctx, ph: Phase) -> None:
    master = ctx.stack.find_pid("nginx")
    workers = ctx.stack.children_of(master) if master else []
    pid, t = kill_part(ctx, ph, "nginx")
    if pid is None:
        return
    recover_or_repair(ctx, ph, "nginx", t, pid)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
    if alive:
        # a master killed with SIGKILL leaves its workers running (and, with reuseport, still accepting)
        ph.note(f"the killed master's workers were still running: pids {alive}; the suite stops them")
        for w in alive:
            try:
                os.kill(w, 9)
            except OSError:
                pass


# ---------------------------------------------------------------------- stop / start

def stop_server(part: str):
    def run(ctx: Ctx, ph: Phase) -> None:
        ph.t_inject = time.time()
        ph.note(f"stop {part}: {ctx.stack.stop_server(part)}")
        ctx.sleep(ctx.cfg.hold_s)
        ph.note(f"start {part}: {ctx.stack.start_server(part)}")
        t = time.time()
        if part == "redis" and ctx.stack.redis_ping():
            ctx.redis_up.append(t)
        if not ctx.await_recovery(ph, None, t):
            ctx.repair(ph, part, t)
    return run


# ---------------------------------------------------------------------- Redis: with and without a dump

def redis_dump_path(ctx: Ctx) -> str | None:
    try:
        d = ctx.stack.redis("CONFIG", "GET", "dir")[1]
        f = ctx.stack.redis("CONFIG", "GET", "dbfilename")[1]
        return os.path.join(d, f)
    except Exception:
        return None


def redis_kill_no_dump(ctx: Ctx, ph: Phase) -> None:
    """kill -9 of redis-server holding data it never saved; it comes back empty."""
    keys = cold_put(ctx, ph, "v1")
    dump = redis_dump_path(ctx)
    if dump and os.path.exists(dump):
        os.remove(dump)
        ph.note(f"removed an earlier dump ({dump}) so Redis comes back empty")
    pid, t = kill_part(ctx, ph, "redis")
    if pid is None:
        return
    cold_put(ctx, ph, "v2", keys)          # applied while Redis is down: the consumer keeps the cache updates
    recover_or_repair(ctx, ph, "redis", t, pid)
    cold_read(ctx, keys, ctx.cfg.post_s)


def redis_stop_save(ctx: Ctx, ph: Phase) -> None:
    """SHUTDOWN SAVE, writes while down, start: Redis comes back with the older dump (README's outage case)."""
    keys = cold_put(ctx, ph, "v1")
    ph.t_inject = time.time()
    ph.note(f"stop redis (SHUTDOWN SAVE): {ctx.stack.stop_server('redis')}")
    cold_put(ctx, ph, "v2", keys)
    ctx.sleep(ctx.cfg.hold_s)
    ph.note(f"start redis (loads the dump): {ctx.stack.start_server('redis')}")
    t = time.time()
    if ctx.stack.redis_ping():
        ctx.redis_up.append(t)
    if not ctx.await_recovery(ph, "redis", t):
        ctx.repair(ph, "redis", t)
    cold_read(ctx, keys, ctx.cfg.post_s)


def redis_kill_with_dump(ctx: Ctx, ph: Phase) -> None:
    """A dump taken earlier, newer writes, kill -9, start: Redis comes back holding older versions (issue 9, bug 4)."""
    keys = cold_put(ctx, ph, "v1")
    ph.note(f"redis SAVE: {ctx.stack.redis('SAVE')}")
    cold_put(ctx, ph, "v2", keys)          # applied with Redis up: the cache holds v2, the dump v1
    pid, t = kill_part(ctx, ph, "redis")
    if pid is None:
        return
    recover_or_repair(ctx, ph, "redis", t, pid)
    cold_read(ctx, keys, ctx.cfg.post_s)


# ---------------------------------------------------------------------- faults that kill nothing: held, then undone

def held(ctx: Ctx, ph: Phase, what: str, hold_s: float, undo: Callable[[], None],
         watch: Callable[[float], None] | None = None) -> tuple[float, float]:
    """The fault injected just now: noted (WHAT), kept HOLD_S seconds with the load running (WATCH(t_inject), if
    given, may look at the stack meanwhile), then undone by UNDO, whatever happened; (inject time, undo time)."""
    t = time.time()
    ph.t_inject = t
    ph.note(what)
    try:
        if watch:
            watch(t)
        ctx.sleep(max(0.0, hold_s - (time.time() - t)))
    finally:
        undo()
    return t, time.time()


def served_through(ctx: Ctx, ph: Phase, part: str, t: float, t_end: float, wait_s: float | None = None) -> None:
    """After a fault held from T to T_END: when the API served again while it held (two probes in a row), if it did;
    then the API serving after T_END, nobody acting (PART restarted as a person would if not)."""
    during = ctx.serving_since(t)
    if during is not None and during < t_end:
        ph.figures["served_again_s"] = round(during - t, 1)
        ph.note(f"the API served again {during - t:.1f}s into the fault, while it held")
    if not ctx.await_recovery(ph, None, t_end, wait_s=wait_s):
        ctx.repair(ph, part, t_end)


# ---------------------------------------------------------------------- pauses: alive, but frozen (SIGSTOP)

def freeze(part: str | Callable[[Ctx], str], hold_s: float, what: str = ""):
    """SIGSTOP the process of PART (with TREE: every process of the server, e.g. PostgreSQL's postmaster and its
    backends) for HOLD_S seconds, then SIGCONT. Nothing dies: the process's connections stay open while it cannot
    answer, the way a long GC pause, a stalled VM or a swapped-out host looks. Figures: when the API served again
    (two probes in a row) after the freeze began, and whether that was while the process was still frozen."""
    def run(ctx: Ctx, ph: Phase) -> None:
        name = part(ctx) if callable(part) else part
        pid = ctx.stack.find_pid(name)
        if pid is None:
            ph.check("fault injected", False, f"no running process found for {name}")
            return
        pids = [pid, *_descendants(ctx, pid)] if name.startswith("postgres") else [pid]

        def resume() -> None:
            for p in pids:
                try:
                    os.kill(p, signal.SIGCONT)
                except OSError:
                    pass

        def takeover(t: float) -> None:
            """The broker's view, every 2 s: when does another consumer hold the frozen one's partitions?"""
            active, took_over = name, None
            while time.time() - t < hold_s - 3 and took_over is None:
                ctx.sleep(2.0)
                active = ctx.stack.active_consumer() or name
                if active != name:
                    took_over = time.time() - t
            if took_over is not None:
                ph.figures["takeover_s"] = round(took_over, 1)
            ph.check("the standby took over while the active consumer was frozen", took_over is not None,
                     f"{active} active {took_over:.1f}s into the freeze" if took_over is not None else
                     f"{name} still the broker's active consumer {time.time() - t:.0f}s into the freeze")

        for p in pids:
            os.kill(p, signal.SIGSTOP)
        t, t_cont = held(ctx, ph, f"SIGSTOP {name} ({len(pids)} process{'es' if len(pids) > 1 else ''}, pid {pid}) "
                         f"for {hold_s:.0f}s" + (f": {what}" if what else ""), hold_s, resume,
                         takeover if name.startswith("kv-consumer-") else None)
        ph.note(f"SIGCONT {name} after {t_cont - t:.1f}s")
        served_through(ctx, ph, name, t, t_cont)
        ph.check(f"{name} runs on, the same process", ctx.stack.find_pid(name) == pid,
                 f"pid {ctx.stack.find_pid(name)} (frozen: {pid})")
    return run


def _descendants(ctx: Ctx, pid: int) -> list[int]:
    out, pending = [], [pid]
    while pending:
        for c in ctx.stack.children_of(pending.pop()):
            out.append(c)
            pending.append(c)
    return out


# ---------------------------------------------------------------------- network partitions (scripts/faults/netproxy.py)

def _netproxy(path: str, method: str = "GET") -> dict:
    port = os.environ.get("KVMESH_NETPROXY_CONTROL", "")
    if not port:
        raise RuntimeError("no network proxies (scripts/faults.sh full starts them: KVMESH_NETPROXY_CONTROL)")
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def partition(part: str | Callable[[Ctx], str], server: str, hold_s: float):
    """The connections between PART and SERVER cut for HOLD_S seconds, then healed: PART reaches SERVER through a
    proxy of its own (KVMESH_VIA_PROXY), which stops forwarding anything (no reset, no close: silence, as a network
    partition looks to both ends) and then forwards again what waited, nothing lost. Every other path stays whole.
    Figures: when the API served again during the partition, and after the heal."""
    def run(ctx: Ctx, ph: Phase) -> None:
        name = part(ctx) if callable(part) else part
        proxy = f"{name}:{server}"
        try:
            before = _netproxy("/").get(proxy)
        except (OSError, RuntimeError, ValueError) as e:
            ph.check("fault injected", False, str(e))
            return
        if not before or not before["connections"]:
            ph.check("fault injected", False, f"{name} has no connection to {server} through its proxy: {before}")
            return
        healed: list[dict] = []
        _netproxy(f"/partition/{proxy}", "POST")
        t, t_heal = held(ctx, ph, f"network partition between {name} and {server} ({before['connections']} "
                         f"connection(s) through 127.0.0.1:{before['listen']}) for {hold_s:.0f}s", hold_s,
                         lambda: healed.append(_netproxy(f"/heal/{proxy}", "POST")))
        ph.note(f"healed after {t_heal - t:.1f}s ({healed[0]['connections']} connection(s) through the proxy)")
        served_through(ctx, ph, name, t, t_heal)
        ph.check(f"{name} runs on, the same process", ctx.stack.find_pid(name) is not None,
                 f"pid {ctx.stack.find_pid(name)}")
    return run


# ---------------------------------------------------------------------- a full disk

def _remount(path: str, size: int) -> str:
    res = subprocess.run(["mount", "-o", f"remount,size={size}", path], capture_output=True, text=True, timeout=30)
    return "" if res.returncode == 0 else (res.stderr.strip() or f"mount rc {res.returncode}")


def disk_full(part: str, hold_s: float, left: int = 0):
    """The filesystem PART keeps its data on (RUN/PART, a tmpfs of its own that scripts/faults.sh full mounts) made
    full for HOLD_S seconds: remounted with its size cut to what it holds plus LEFT bytes, then given its size back.
    The server stays up; what kvmesh answers meanwhile, and whether it serves writes again by itself once there is
    room, is the finding. Nothing acknowledged may be lost (the checks after the phase)."""
    def run(ctx: Ctx, ph: Phase) -> None:
        mnt = os.path.join(ctx.stack.run_dir, part)
        if not os.path.ismount(mnt):
            ph.check("fault injected", False, f"{mnt} is not a filesystem of its own (scripts/faults.sh full mounts a "
                     "tmpfs there when it runs as root and mount works)")
            return
        st = os.statvfs(mnt)
        size = st.f_blocks * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        err = _remount(mnt, used + left)
        if err:
            ph.check("fault injected", False, f"remount of {mnt} failed: {err}")
            return
        errors: list[str] = []
        t, t_free = held(ctx, ph, f"{part}'s filesystem made full: {used / 2**20:.1f} MiB used, {left >> 20} MiB "
                         f"left, for {hold_s:.0f}s", hold_s, lambda: errors.append(_remount(mnt, size)))
        err = errors[0]
        free = os.statvfs(mnt).f_bavail * st.f_frsize
        ph.note(f"{part}'s filesystem given its room back ({free >> 20} MiB free){': ' + err if err else ''}")
        writes, _, _ = ctx.history.snapshot()
        during = [w for w in writes if t <= w.t_send <= t_free]
        refused: dict[str, int] = {}
        for w in during:
            if w.outcome != "acked":
                refused[w.status] = refused.get(w.status, 0) + 1
        acked = sum(1 for w in during if w.outcome == "acked")
        ph.figures.update(acked_while_full=acked, refused_while_full=sum(refused.values()))
        ph.note(f"while full: {acked} writes acknowledged, {sum(refused.values())} refused or unanswered "
                f"({', '.join(f'{n} x {st_}' for st_, n in sorted(refused.items(), key=lambda x: -x[1])[:4]) or '-'})")
        # a write in flight when the broker blocks waits for its confirm (KVMESH_CONFIRM_TIMEOUT_MS, 5 s); the
        # ones after it are refused at once
        slow = [w for w in during if w.outcome != "acked" and w.t_done - w.t_send > 6.0]
        # (a client with a shorter timeout, the probe's 3 s, may give up on one of those first)
        ph.check("writes accepted, or refused with 503 (UNAVAILABLE) within the confirm timeout",
                 all(st_.startswith("503") or st_ == "TimeoutError" for st_ in refused) and not slow,
                 (f"refusals: {refused}; {len(slow)} of them took more than 6 s" if refused else "none refused"))
        served_through(ctx, ph, part, t, t_free, wait_s=60.0)
    return run


# ---------------------------------------------------------------------- day-2 operations under load

def rolling_upgrade(ctx: Ctx, ph: Phase) -> None:
    """./start.sh upgrade --force with the load running: every consumer, then every replica, stopped (a replica
    drained first) and started again one at a time. Not one request through nginx may fail meanwhile (the checks
    after the phase then find nothing lost or applied twice)."""
    java = [p for p in ctx.stack.parts() if p.startswith(("kv-service-", "kv-consumer-"))]
    before = {p: ctx.stack.find_pid(p) for p in java}
    t = time.time()
    ph.t_inject = t
    rc, out = ctx.stack.start_sh("upgrade", "--force", timeout=90 + 60 * len(java))
    t_end = time.time()
    lines = [x for x in out.splitlines() if x.strip()]
    ph.note(f"./start.sh upgrade --force: rc {rc} in {t_end - t:.1f}s ({lines[-1][:140] if lines else 'no output'})")
    ph.figures["upgrade_s"] = round(t_end - t, 1)
    ph.check("upgrade command", rc == 0, "\n".join(lines[-6:]) if rc else f"{len(java)} parts restarted one by one")
    after = {p: ctx.stack.find_pid(p) for p in java}
    same = [p for p in java if after[p] is None or after[p] == before[p]]
    ph.check("every replica and consumer is a new process", not same, f"not restarted: {same}" if same else
             f"{len(java)} new pids")
    ctx.sleep(1.0)   # answers to requests sent just before the end
    writes, reads, probes = ctx.history.snapshot()
    bad_w = [w for w in writes if t <= w.t_send <= t_end and w.outcome != "acked"]
    bad_r = [r for r in reads if t <= r.t_start <= t_end and (r.error or r.http is None or r.http >= 500)]
    bad_p = [p for p in probes if t <= p.t_start <= t_end and not p.ok]
    n_w = sum(1 for w in writes if t <= w.t_send <= t_end)
    n_r = sum(1 for r in reads if t <= r.t_start <= t_end)
    ph.figures.update(requests=n_w + n_r, failed=len(bad_w) + len(bad_r) + len(bad_p))
    detail = (f"{n_w} writes, {n_r} reads and {sum(1 for p in probes if t <= p.t_start <= t_end)} probes through nginx "
              f"during the upgrade; failed: {len(bad_w)} writes, {len(bad_r)} reads, {len(bad_p)} probes")
    examples = [f"{w.status}" for w in bad_w[:3]] + [f"read {r.http} {r.error}" for r in bad_r[:3]] + \
        [p.detail for p in bad_p[:3]]
    ph.check("no failed request", not (bad_w or bad_r or bad_p), detail + (f" ({examples})" if examples else ""))
    ph.recovered = not bad_p
    ph.recovery_s = 0.0 if not bad_p else None


# ---------------------------------------------------------------------- RabbitMQ cluster (scripts/faults.sh cluster)

PAUSE_GOAL_S = 15.0     # docs/reliability.md: the longest pause in acknowledged writes when one node of three dies
NODE_BACK_S = 120.0     # the killed node runs again and is back in the cluster (supervisord restarts it)


def _node_part(ctx: Ctx, node: str) -> str | None:
    """rabbitmq-N of an Erlang node name (node 1 is KVMESH_RABBIT_NODE, node N its name with -rN)."""
    base = ctx.stack.servers_env.get("KVMESH_RABBIT_NODE", "")
    for i in range(1, ctx.stack.rabbit_nodes + 1):
        name = base if i == 1 else base.replace("@", f"-r{i}@", 1)
        if name == node:
            return f"rabbitmq-{i}"
    return None


def replicated(ctx: Ctx, ph: Phase, label: str, wait_s: float) -> bool:
    """Every quorum queue of the stack has min(nodes, 3) members, all of them online (bounded wait)."""
    want = min(ctx.stack.rabbit_nodes, 3)
    seen: dict[str, dict] = {}

    def ok() -> bool:
        seen.clear()
        seen.update(ctx.stack.quorum_queues())
        return bool(seen) and all(len(q["members"]) >= want and len(q["online"]) >= want for q in seen.values())
    t0 = time.time()
    good = wait_until(ok, wait_s, 1.0)
    short = {n: f"{len(q['online'])}/{len(q['members'])}" for n, q in seen.items()
             if len(q["members"]) < want or len(q["online"]) < want}
    ph.check(label, good, f"{len(seen)} quorum queues, each on {want} nodes, all online"
             + (f" after {time.time() - t0:.1f}s" if good else f"; short (online/members): {short}"))
    return good


def write_pause(ctx: Ctx, t_from: float, t_to: float) -> tuple[float, float, float, int]:
    """(longest interval without an acknowledged write, slowest acknowledged write, span of the refused writes, writes
    refused or unanswered) over the writes sent from T_FROM to T_TO. The first shows a stop of the whole write path;
    the second the wait of one writer whose partition queue had to elect a new leader (the other partitions go on
    meanwhile); the third how long writes were refused (e.g. by the replica whose broker connection was lost)."""
    writes, _, _ = ctx.history.snapshot()
    window = [w for w in writes if t_from <= w.t_send <= t_to]
    acked = sorted(w.t_done for w in window if w.outcome == "acked")
    marks = [t_from] + acked + [max(t_to, acked[-1] if acked else t_to)]
    pause = max(b - a for a, b in zip(marks, marks[1:]))
    slowest = max((w.t_done - w.t_send for w in window if w.outcome == "acked"), default=0.0)
    bad = [w for w in window if w.outcome != "acked"]
    span = (max(w.t_done for w in bad) - min(w.t_send for w in bad)) if bad else 0.0
    return round(pause, 2), round(slowest, 2), round(span, 2), len(bad)


def kill_rabbit_node(which: str):
    """kill -9 one RabbitMQ node of the cluster under load: WHICH is a part (rabbitmq-1) or "leader" (the node,
    other than one killed earlier in the run, that leads the most partition queues). The API must keep serving
    (recovery = two probes in a row after the kill), the node must come back by itself and rejoin, and the queues
    must be whole again before the next phase. Figures: the longest pause in acknowledged writes, the slowest
    acknowledged write, writes refused during the fault."""
    def run(ctx: Ctx, ph: Phase) -> None:
        stack = ctx.stack
        if stack.rabbit_nodes < 3:
            ph.check("fault injected", False, f"needs a RabbitMQ cluster of 3 nodes, the stack has {stack.rabbit_nodes}")
            return
        if not replicated(ctx, ph, "queues replicated before the kill", 60):
            return
        part = which
        if which == "leader":
            count: dict[str, int] = {}
            for name, q in stack.quorum_queues().items():
                node_part = _node_part(ctx, q["leader"])
                if ".ops." in name and node_part and node_part not in ctx.killed_nodes:
                    count[node_part] = count.get(node_part, 0) + 1
            part = max(count, key=count.get) if count else "rabbitmq-2"
            ph.note(f"{part} leads {count.get(part, 0)} of the partition queues (leaders: {count})")
        pid, t = kill_part(ctx, ph, part)
        if pid is None:
            return
        ctx.killed_nodes.append(part)
        api = wait_until(lambda: ctx.serving_since(t) is not None, ctx.cfg.recover_wait_s, 0.2)
        ph.recovered = api
        ph.recovery_s = round((ctx.serving_since(t) or time.time()) - t, 1) if api else None
        ph.note(f"API serving {ph.recovery_s}s after the kill" if api else
                f"API not serving within {ctx.cfg.recover_wait_s:.0f}s of the kill")
        back = wait_until(lambda: (stack.find_pid(part) or pid) != pid and stack.part_up(part), NODE_BACK_S, 0.5)
        ph.figures["node_back_s"] = round(time.time() - t, 1)
        ph.check("node back by itself", back, f"{part} running and answering {ph.figures['node_back_s']}s after "
                 "the kill (supervisord)" if back else f"{part} not back within {NODE_BACK_S:.0f}s")
        if not back:
            ph.repair = stack.repair(part)
            ph.note(f"repair: {ph.repair}")
        replicated(ctx, ph, "queues whole again (the node rejoined)", 90)
        gap, slowest, span, refused = write_pause(ctx, t - 1.0, time.time())
        pause = max(gap, slowest, span)
        ph.figures.update(gap_s=gap, slowest_ack_s=slowest, refused_span_s=span, pause_s=pause, refused=refused)
        ph.check(f"writes paused at most {PAUSE_GOAL_S:.0f}s", pause <= PAUSE_GOAL_S,
                 f"pause {pause}s: longest interval without an acknowledged write {gap}s, slowest acknowledged write "
                 f"{slowest}s, {refused} writes refused or unanswered within {span}s (from the kill until the node "
                 "was back)")
    return run


CLUSTER_SCHEDULE = [
    Fault("kill-rabbit-node-1", "kill -9 RabbitMQ node 1 of 3", "kill", kill_rabbit_node("rabbitmq-1")),
    Fault("kill-rabbit-leader", "kill -9 the RabbitMQ node leading most queues", "kill", kill_rabbit_node("leader")),
]


# ---------------------------------------------------------------------- the schedule

SCHEDULE = [
    Fault("kill-replica", "kill -9 kv-service-1", "kill", kill("kv-service-1"), quick=True),
    Fault("kill-consumer", "kill -9 the active kv-consumer", "kill", kill(active_consumer), quick=True),
    Fault("kill-envoy", "kill -9 Envoy", "kill", kill("envoy")),
    Fault("kill-nginx", "kill -9 the nginx master", "kill", kill_nginx_master),
    Fault("kill-redis", "kill -9 redis-server (no dump)", "kill", redis_kill_no_dump),
    Fault("kill-rabbitmq", "kill -9 RabbitMQ (beam.smp)", "kill", kill("rabbitmq")),
    Fault("kill-postgres", "kill -9 the PostgreSQL postmaster", "kill", kill("postgres")),
    Fault("stop-rabbitmq", "RabbitMQ stopped, then started", "stop", stop_server("rabbitmq")),
    Fault("stop-postgres", "PostgreSQL stopped, then started", "stop", stop_server("postgres")),
    Fault("stop-redis-save", "Redis SHUTDOWN SAVE, then started (old dump)", "stop", redis_stop_save),
    Fault("kill-redis-dump", "kill -9 redis-server after a dump, then started", "kill", redis_kill_with_dump,
          quick=True),
    Fault("partition-replica-rabbitmq", "network partition: kv-service-1 and RabbitMQ, 20 s", "partition",
          partition("kv-service-1", "rabbitmq", 20)),
    Fault("partition-consumer-postgres", "network partition: the active kv-consumer and PostgreSQL, 20 s",
          "partition", partition(active_consumer, "postgres", 20)),
    Fault("partition-consumer-rabbitmq", "network partition: the active kv-consumer and RabbitMQ, 20 s",
          "partition", partition(active_consumer, "rabbitmq", 20)),
    Fault("partition-consumer-redis", "network partition: the active kv-consumer and Redis, 20 s (the replicas still "
          "reach it)", "partition", partition(active_consumer, "redis", 20)),
    Fault("freeze-consumer", "the active kv-consumer frozen 45 s (SIGSTOP, past the broker's heartbeat timeout)",
          "pause", freeze(active_consumer, 45, "AMQP heartbeat 10 s: the broker drops its connection after missed "
                          "beats (about 30 s) and hands its partitions to the standby; on SIGCONT its own work must not "
                          "be applied again or out of order")),
    Fault("freeze-replica", "kv-service-1 frozen 20 s (SIGSTOP)", "pause", freeze("kv-service-1", 20)),
    Fault("freeze-postgres", "PostgreSQL frozen 20 s (SIGSTOP of the postmaster and every backend)", "pause",
          freeze("postgres", 20)),
    Fault("freeze-redis", "Redis frozen 20 s (SIGSTOP): connections open, nothing answered", "pause",
          freeze("redis", 20)),
    # 256 MiB left: below the broker's disk_free_limit (1 GB, kvmesh's setting), so its disk alarm blocks publishers;
    # a disk filled to the last byte at once, faster than the broker polls it, corrupts quorum queue segments
    # (RabbitMQ 3.10; docs/reliability.md), which is what the limit is for
    Fault("disk-full-rabbitmq", "RabbitMQ's disk nearly full for 20 s (256 MiB left, below its 1 GB disk_free_limit)",
          "disk", disk_full("rabbitmq", 20, 256 << 20)),
    Fault("disk-full-postgres", "PostgreSQL's disk full for 20 s (not a byte left)", "disk", disk_full("postgres", 20)),
    Fault("rolling-upgrade", "./start.sh upgrade: consumers and replicas restarted one by one", "probe",
          rolling_upgrade, quick=True),
    Fault("backup-restore", "./start.sh backup under load, restored into a fresh run folder", "probe", backup_restore,
          quick=True),
    Fault("slow-watcher", "a Watch client that never reads, 256 KB values", "probe", slow_watcher, quick=True),
    Fault("request-id-reuse", "request id reused for another request", "probe", request_id_reuse, quick=True),
    Fault("request-id-reuse-redis-lost", "request id reused on another partition after Redis lost everything, "
          "the first write still queued", "probe", request_id_reuse_redis_lost, quick=True),
]


def schedule(mode: str, only: list[str] | None = None) -> list[Fault]:
    if mode == "cluster":
        return [f for f in CLUSTER_SCHEDULE if not only or f.id in only]
    if only:
        known = {f.id for f in SCHEDULE}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise SystemExit(f"unknown fault(s) {unknown}; known: {sorted(known)}")
        return [f for f in SCHEDULE if f.id in only]
    return [f for f in SCHEDULE if mode == "full" or f.quick]
