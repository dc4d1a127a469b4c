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
from probes import cold_put, cold_read, request_id_reuse, slow_watcher


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
]


def schedule(mode: str, only: list[str] | None = None) -> list[Fault]:
    if only:
        known = {f.id for f in SCHEDULE}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise SystemExit(f"unknown fault(s) {unknown}; known: {sorted(known)}")
        return [f for f in SCHEDULE if f.id in only]
    return [f for f in SCHEDULE if mode == "full" or f.quick]
