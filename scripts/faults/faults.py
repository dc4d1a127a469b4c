"""The fault schedule: one fault at a time, with the load running.

A kill fault sends SIGKILL to one process and then waits for the part to run again and the API to serve, with
nobody acting (DESIGN.md: within 15 s). If that does not happen within the wait, the suite acts as a person would
(./start.sh restart PART, or starts the server) so the next phases run on a whole stack, and says so.
A stop fault stops a server the way an operator does, keeps it down for a while, starts it again, and then waits
for kvmesh to serve again by itself.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from context import Ctx, Phase
from stack import wait_until
from probes import cold_put, cold_read, request_id_reuse, request_id_reuse_redis_lost, slow_watcher


@dataclass(frozen=True)
class Fault:
    id: str
    title: str
    kind: str                          # kill | stop | probe
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
