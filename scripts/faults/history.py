"""Every operation the checker made, as the client saw it: writes (with their request id, outcome and the time they
were sent and answered), reads (with the version they returned), and availability probes."""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, asdict

BIG_VALUE = 2048  # longer values are compared by digest (PostgreSQL sends md5 for them too)


def digest(value: str | None) -> str | None:
    if value is None or len(value) <= BIG_VALUE:
        return value
    return "md5:" + hashlib.md5(value.encode()).hexdigest()


@dataclass
class Write:
    rid: str                 # requestId, unique per write (the reuse probe reuses on purpose)
    key: str
    kind: str                # PUT | DELETE
    value: str | None        # the value sent (digest for big values), None for DELETE
    mode: str                # SYNC | ASYNC
    family: str              # kv | api
    source: str              # load | probe | cold | reuse | slow
    t_send: float
    t_done: float = 0.0
    outcome: str = ""        # acked | failed | unknown
    status: str = ""         # queued | applied | "503 14" | TimeoutError ...
    op_id: str = ""
    version: int | None = None   # from an "applied" answer


@dataclass
class Read:
    key: str
    family: str
    source: str              # load | cold
    t_start: float
    t_done: float
    http: int | None
    version: int | None      # None: absent (404) or no answer
    value: str | None
    served_by: str = ""      # redis | postgres
    error: str = ""


@dataclass
class Probe:
    t_start: float
    t_done: float
    ok: bool
    detail: str = ""


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_write(self, w: Write) -> None:
        with self.lock:
            self.writes.append(w)

    def add_read(self, r: Read) -> None:
        with self.lock:
            self.reads.append(r)

    def add_probe(self, p: Probe) -> None:
        with self.lock:
            self.probes.append(p)

    def snapshot(self) -> tuple[list[Write], list[Read], list[Probe]]:
        with self.lock:
            return list(self.writes), list(self.reads), list(self.probes)

    def to_json(self) -> dict:
        w, r, p = self.snapshot()
        return {"writes": [asdict(x) for x in w], "reads": [asdict(x) for x in r], "probes": [asdict(x) for x in p]}
