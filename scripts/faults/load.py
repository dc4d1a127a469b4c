"""The load that runs while faults are injected: N writers and M readers on a fixed set of keys through nginx, and an
availability prober. Every operation goes into the History. `Control` pauses them all between phases (for the
drain and the verification) and stops them at the end."""
from __future__ import annotations

import random
import string
import threading
import time

from api import Api, classify_write, read_result
from history import History, Probe, Read, Write, digest

PAD = string.ascii_lowercase + string.digits


class Control:
    """Start/pause/stop for the worker threads; `pause` returns once none of them is inside an operation."""

    def __init__(self):
        self.stopped = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._cv = threading.Condition()
        self._busy = 0

    def enter(self) -> bool:
        while not self._running.wait(0.2):
            if self.stopped.is_set():
                return False
        if self.stopped.is_set():
            return False
        with self._cv:
            self._busy += 1
        return True

    def leave(self) -> None:
        with self._cv:
            self._busy -= 1
            self._cv.notify_all()

    def pause(self, timeout: float = 40.0) -> bool:
        self._running.clear()
        with self._cv:
            return self._cv.wait_for(lambda: self._busy == 0, timeout)

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.stopped.set()
        self._running.set()

    def sleep(self, seconds: float) -> None:
        self.stopped.wait(max(0.0, seconds))


def make_value(rid: str, rng: random.Random, size: int | None = None) -> str:
    """Values name their request id, so any value read back identifies the write that stored it."""
    n = size if size is not None else rng.randint(24, 200)
    return rid + "|" + "".join(rng.choices(PAD, k=n))


def write_once(api: Api, history: History, *, key: str, kind: str, value: str | None, rid: str, mode: str,
               family: str, source: str, timeout: float = 20.0, headers: dict | None = None,
               rid_in_body: bool = True) -> Write:
    """One write through nginx, recorded. RID goes in the body unless RID_IN_BODY is false (then the caller sends
    it in a header and the record still names it)."""
    w = Write(rid=rid, key=key, kind=kind, value=digest(value), mode=mode, family=family, source=source,
              t_send=time.time())
    if kind == "PUT":
        a = api.put(key, value, rid if rid_in_body else None, mode, family, headers=headers, timeout=timeout)
    else:
        a = api.delete(key, rid if rid_in_body else None, mode, family, timeout=timeout)
    w.t_send, w.t_done = a.t_start, a.t_done
    w.outcome, w.status, w.op_id, w.version = classify_write(a)
    history.add_write(w)
    return w


def read_once(api: Api, history: History, key: str, family: str, source: str, timeout: float = 10.0) -> Read:
    a = api.get(key, family, timeout)
    version, value, served_by = read_result(a)
    r = Read(key=key, family=family, source=source, t_start=a.t_start, t_done=a.t_done, http=a.status,
             version=version, value=digest(value), served_by=served_by, error=a.error)
    history.add_read(r)
    return r


class Load:
    def __init__(self, api: Api, history: History, run_id: str, keys: list[str], *, writers: int, readers: int,
                 write_rate: float, read_rate: float, sync_share: float = 0.8, delete_share: float = 0.04,
                 probe_key: str, probe_interval: float = 0.25, seed: int = 1):
        self.api, self.history, self.run_id, self.keys = api, history, run_id, keys
        self.writers, self.readers = writers, readers
        self.write_rate, self.read_rate = write_rate, read_rate
        self.sync_share, self.delete_share = sync_share, delete_share
        self.probe_key, self.probe_interval = probe_key, probe_interval
        self.seed = seed
        self.control = Control()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.writers):
            self._spawn(self._writer, i)
        for i in range(self.readers):
            self._spawn(self._reader, i)
        self._spawn(self._prober, 0)

    def _spawn(self, fn, i: int) -> None:
        t = threading.Thread(target=fn, args=(i,), name=f"{fn.__name__}-{i}", daemon=True)
        t.start()
        self.threads.append(t)

    def pause(self) -> bool:
        return self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()
        for t in self.threads:
            t.join(timeout=25)

    def _paced(self, rate: float, body) -> None:
        interval = 1.0 / rate
        while self.control.enter():
            t0 = time.time()
            try:
                body()
            finally:
                self.control.leave()
            self.control.sleep(interval - (time.time() - t0))

    def _writer(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        seq = 0

        def one():
            nonlocal seq
            seq += 1
            rid = f"{self.run_id}-w{i}-{seq}"
            key = rng.choice(self.keys)
            mode = "SYNC" if rng.random() < self.sync_share else "ASYNC"
            family = rng.choice(("kv", "api"))
            if rng.random() < self.delete_share:
                write_once(self.api, self.history, key=key, kind="DELETE", value=None, rid=rid, mode=mode,
                           family=family, source="load")
            else:
                write_once(self.api, self.history, key=key, kind="PUT", value=make_value(rid, rng), rid=rid,
                           mode=mode, family=family, source="load")
        self._paced(self.write_rate, one)

    def _reader(self, i: int) -> None:
        rng = random.Random(self.seed * 2000 + i)
        self._paced(self.read_rate,
                    lambda: read_once(self.api, self.history, rng.choice(self.keys), rng.choice(("kv", "api")), "load"))

    def _prober(self, _: int) -> None:
        """Is the API serving? An ASYNC put and a get of one key, short timeouts, every probe_interval."""
        rng = random.Random(self.seed * 3000)
        seq = 0

        def one():
            nonlocal seq
            seq += 1
            rid = f"{self.run_id}-p-{seq}"
            t0 = time.time()
            w = write_once(self.api, self.history, key=self.probe_key, kind="PUT", value=make_value(rid, rng, 16),
                           rid=rid, mode="ASYNC", family="kv", source="probe", timeout=3.0)
            a = self.api.get(self.probe_key, "kv", timeout=3.0)
            ok = w.outcome == "acked" and a.status in (200, 404)
            detail = "" if ok else f"put {w.outcome} {w.status}; get {a.status or a.error}"
            self.history.add_probe(Probe(t0, time.time(), ok, detail))
        self._paced(1.0 / self.probe_interval, one)
