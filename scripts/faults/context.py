"""What every fault sees: the settings of the mode, the stack, the API, the history and the load, the record of the
phase it runs in, and the one way to wait for recovery (the part back and the API serving, nobody acting)."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from api import Api
from history import History
from load import Load
from stack import Stack, wait_until

GOAL_S = 15.0  # DESIGN.md: the API serves again within 15 s of a kill -9 of any single process, nobody acting


@dataclass(frozen=True)
class Config:
    writers: int
    readers: int
    write_rate: float        # per writer, operations/s
    read_rate: float         # per reader
    keys: int
    warmup_s: float
    pre_s: float             # load before the fault
    post_s: float            # load after recovery
    hold_s: float            # how long a stopped server stays stopped
    recover_wait_s: float    # how long to wait for self-recovery before a person would act
    drain_s: float
    cold_keys: int
    slow_value_bytes: int
    slow_total_bytes: int
    slow_time_s: float
    redis_window_s: float    # stale cache reads allowed this long after Redis accepts connections again (README,
                             # "Redis down": none, whatever Redis does)


CONFIGS = {
    "quick": Config(writers=6, readers=3, write_rate=8, read_rate=15, keys=200, warmup_s=3, pre_s=3, post_s=4,
                    hold_s=4, recover_wait_s=GOAL_S, drain_s=60, cold_keys=20, slow_value_bytes=256 * 1024,
                    # 64 MB: a REST watcher's stream is closed once its replica holds 16 MiB for it, and between the
                    # replica and the client nginx's socket from Envoy may hold more than 16 MB when the kernel grows
                    # its receive buffer (net.ipv4.tcp_rmem allows 32 MiB here): 32 MB written then sometimes all
                    # fitted in transit and no bound was reached (the check failed as "stream still open")
                    slow_total_bytes=64 << 20, slow_time_s=60, redis_window_s=0.0),
    # scripts/faults.sh cluster: a 3-node RabbitMQ cluster, two nodes killed one after the other (the stack's own)
    "cluster": Config(writers=6, readers=3, write_rate=8, read_rate=15, keys=200, warmup_s=3, pre_s=4, post_s=4,
                      hold_s=4, recover_wait_s=GOAL_S, drain_s=60, cold_keys=20, slow_value_bytes=256 * 1024,
                      slow_total_bytes=32 << 20, slow_time_s=30, redis_window_s=0.0),
    "full": Config(writers=8, readers=4, write_rate=10, read_rate=20, keys=200, warmup_s=5, pre_s=5, post_s=8,
                   hold_s=8, recover_wait_s=30, drain_s=90, cold_keys=40, slow_value_bytes=256 * 1024,
                   slow_total_bytes=640 << 20, slow_time_s=150, redis_window_s=0.0),
}


@dataclass
class Phase:
    id: str
    title: str
    kind: str                          # kill | stop | partition | pause | disk | probe
    t_start: float = 0.0
    t_inject: float = 0.0
    t_end: float = 0.0
    recovered: bool | None = None      # by itself, within the wait; None where it does not apply
    recovery_s: float | None = None
    repair: str = ""                   # what the suite did as "a person" when nothing came back
    notes: list[str] = field(default_factory=list)
    checks: dict[str, dict] = field(default_factory=dict)   # phase-specific checks: name -> {ok, detail}
    figures: dict[str, float] = field(default_factory=dict)  # phase-specific measurements (e.g. the write pause)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"[faults]     {text}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        print(f"[faults]     check {name}: {'ok' if ok else 'FAILED'}{' - ' + detail if detail else ''}", flush=True)


@dataclass
class Ctx:
    cfg: Config
    stack: Stack
    api: Api
    history: History
    load: Load
    run_id: str
    prefix: str                                             # every key of this run starts with it
    redis_up: list[float] = field(default_factory=list)     # moments Redis accepted connections after a restart
    killed_nodes: list[str] = field(default_factory=list)  # RabbitMQ nodes killed so far (cluster mode)

    @classmethod
    def new_run(cls, cfg: Config, stack: Stack, namespace: str) -> Ctx:
        """A run's context: a fresh run id, its keys under NAMESPACE/<run id>/, an empty history, the API client
        (through nginx) and the load, not yet started."""
        run_id = time.strftime("%H%M%S") + f"{random.randrange(36 ** 3):03x}"
        prefix = f"{namespace}/{run_id}/"
        keys = [f"{prefix}k{i:03d}" for i in range(cfg.keys)]
        history = History()
        api = Api(stack.http_port)
        load = Load(api, history, run_id, keys, writers=cfg.writers, readers=cfg.readers, write_rate=cfg.write_rate,
                    read_rate=cfg.read_rate, probe_key=prefix + "probe")
        return cls(cfg, stack, api, history, load, run_id, prefix)

    def sleep(self, seconds: float) -> None:
        self.load.control.sleep(seconds)

    def serving_since(self, t: float, n: int = 2) -> float | None:
        """End time of the n-th of n consecutive successful probes that all started after t (None if not yet)."""
        _, _, probes = self.history.snapshot()
        run = 0
        for p in probes:
            if p.t_start < t:
                continue
            run = run + 1 if p.ok else 0
            if run >= n:
                return p.t_done
        return None

    def await_recovery(self, ph: Phase, part: str | None, since: float, old_pid: int | None = None,
                       wait_s: float | None = None) -> bool:
        """Waits (bounded) for PART to run again (a new process if OLD_PID was killed) and the API to serve,
        with nobody acting. Records recovered / recovery_s on the phase; returns whether it happened."""
        back_at: list[float] = []

        def part_back() -> bool:
            if part is None:
                return True
            pid = self.stack.find_pid(part)
            ok = pid is not None and pid != old_pid and self.stack.part_up(part)
            if ok and not back_at:
                back_at.append(time.time())
                if part == "redis":
                    self.redis_up.append(back_at[0])
            return ok

        ok = wait_until(lambda: part_back() and self.serving_since(since) is not None,
                        wait_s if wait_s is not None else self.cfg.recover_wait_s, 0.2)
        if ok:
            done = max(back_at[0] if back_at else since, self.serving_since(since) or since)
            ph.recovered, ph.recovery_s = True, round(done - since, 1)
            ph.note(f"{part + ' back and ' if part else ''}API serving after {ph.recovery_s}s, nobody acting")
        else:
            ph.recovered = False
            what = [] if part is None or back_at else [f"{part} not running again"]
            if self.serving_since(since) is None:
                what.append("API not serving")
            ph.note(f"not recovered by itself within {self.cfg.recover_wait_s:.0f}s: {', '.join(what)}")
        return ok

    def repair(self, ph: Phase, part: str, since: float) -> None:
        """Acts as a person would (restart the part), then waits for it and the API (bounded)."""
        t0 = time.time()
        ph.repair = self.stack.repair(part)
        ph.note(f"repair: {ph.repair}")
        if part == "redis":
            if wait_until(self.stack.redis_ping, 30):
                self.redis_up.append(time.time())
        ok = wait_until(lambda: self.stack.part_up(part) and self.serving_since(t0) is not None, 90, 0.3)
        ph.note(f"after repair: {part} {'up' if self.stack.part_up(part) else 'STILL DOWN'}, API "
                f"{'serving' if ok else 'NOT serving'} ({time.time() - since:.1f}s after the fault)")
