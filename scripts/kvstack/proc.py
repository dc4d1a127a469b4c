"""Processes, ports and pid files: the small facts both halves of the stack manager ask about."""
from __future__ import annotations

import fcntl
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn, TextIO

SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AVOID_PORTS = frozenset({25672, 27017, 28017})  # RabbitMQ's default dist port, MongoDB's


def ensure_sys_path() -> None:
    """Appends the system folders to PATH (sudo or cron may leave them out)."""
    path = os.environ.get("PATH", "")
    if f":{SYS_PATH}:" not in f":{path}:":
        os.environ["PATH"] = f"{path}:{SYS_PATH}" if path else SYS_PATH


class Log:
    """`[tag] message` lines; `die` prints an ERROR line and exits 1 (as the shell scripts' die did)."""

    def __init__(self, tag: str, out: TextIO | None = None) -> None:
        self.tag = tag
        self.out = out  # None: stdout for say (looked up at call time, so tests can capture it)

    def say(self, msg: str) -> None:
        print(f"[{self.tag}] {msg}", file=self.out or sys.stdout, flush=True)

    def info(self, msg: str) -> None:
        print(f"[{self.tag}] {msg}", file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        print(f"[{self.tag}] WARNING: {msg}", file=sys.stderr, flush=True)

    def error(self, msg: str) -> None:
        print(f"[{self.tag}] ERROR: {msg}", file=sys.stderr, flush=True)

    def die(self, msg: str, code: int = 1) -> NoReturn:
        self.error(msg)
        raise SystemExit(code)


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def elapsed(t0_ms: int) -> str:
    """Seconds since t0 (from now_ms) with one decimal, as `12.3s`."""
    ms = max(0, now_ms() - t0_ms)
    return f"{ms // 1000}.{(ms % 1000) // 100}s"


def pid_alive(pid: int | None) -> bool:
    """True for a live process (a zombie is not alive)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except OSError:
        return False
    return True


def read_pid(path: str) -> int | None:
    """The pid in the first line of a pid file, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            digits = "".join(c for c in f.readline() if c.isdigit())
    except OSError:
        return None
    return int(digits) if digits else None


def port_open(port: int | str, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def wait_gone(secs: float, pids: Iterable[int | None]) -> bool:
    """Waits until none of pids is alive; False after secs."""
    want = [p for p in pids if p]
    end = time.monotonic() + secs
    while True:
        if not any(pid_alive(p) for p in want):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.1)


def wait_until(cond: Callable[[], object], secs: float, interval: float = 0.1) -> bool:
    """Polls cond() until it is true; False after secs."""
    end = time.monotonic() + secs
    while True:
        if cond():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def free_ports(n: int, avoid: Iterable[int] = ()) -> list[int]:
    """n distinct TCP ports free on 127.0.0.1, at random in 20000-32767: below the kernel's ephemeral range (so an
    outgoing connection cannot take one between the pick and the bind), random so concurrent runs rarely pick alike;
    each checked by binding it. Raises OSError when it cannot find them."""
    skip = set(AVOID_PORTS) | set(avoid)
    picked: list[int] = []
    for _ in range(5000):
        if len(picked) == n:
            break
        port = random.randint(20000, 32767)
        if port in skip or port in picked:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        picked.append(port)
    if len(picked) < n:
        raise OSError(f"found only {len(picked)} of {n} free ports")
    return picked


# ---------------------------------------------------------------- /proc

def all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def kill(pids: Iterable[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_hard(log: Log, label: str, pids: Iterable[int]) -> bool:
    """SIGTERM, 5 s, SIGKILL, 5 s; True when all are gone."""
    want = [p for p in pids if p]
    if not want:
        return True
    log.warn(f"{label}: sending SIGTERM to {' '.join(map(str, want))}")
    kill(want, signal.SIGTERM)
    if wait_gone(5, want):
        return True
    log.warn(f"{label}: sending SIGKILL to {' '.join(map(str, want))}")
    kill(want, signal.SIGKILL)
    return wait_gone(5, want)


def tail(path: str, lines: int = 25) -> list[str]:
    """The last lines of a text file ([] when it is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return []
    return data.splitlines()[-lines:]


def flock_wait(path: str, secs: float, mode: int = 0o644) -> int | None:
    """An exclusive flock on path (created if missing), waiting up to secs (as `flock -w`); the fd (not inherited by
    children: O_CLOEXEC), or None after secs."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    end = time.monotonic() + secs
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= end:
                os.close(fd)
                return None
            time.sleep(0.1)
