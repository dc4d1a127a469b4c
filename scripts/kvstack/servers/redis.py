"""Redis: requirepass from a 0600 file, started daemonized (start) or in the foreground (run)."""
from __future__ import annotations

import os
import signal
import time

from kvstack import proc
from kvstack.servers.common import LOG, nonempty, quiet, spawn, tail_log
from kvstack.servers.context import Servers, env_with


def redis_pid(s: Servers) -> int | None:
    p = proc.read_pid(s.rd.redis_pidfile)
    if proc.pid_alive(p) and p is not None and proc.comm(p) == "redis-server":
        return p
    return None


def cli_cmd(s: Servers, *args: str) -> list[str]:
    return ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", s.state.redis_port, *args]


def redis_cli(s: Servers, secs: float, *args: str) -> tuple[int, str]:
    """redis-cli with the password in REDISCLI_AUTH (never on a command line), at most secs."""
    r = quiet(cli_cmd(s, *args), env=env_with(s.env, REDISCLI_AUTH=s.c.redis), timeout=secs)
    return r.returncode, r.stdout


def redis_ping(s: Servers) -> bool:
    rc, out = redis_cli(s, 3, "ping")
    return rc == 0 and out.rstrip("\n") == "PONG"


def server_args(s: Servers) -> list[str]:
    """The server's options, daemonized (start) or in the foreground (run)."""
    rd = s.rd
    return [f"{rd.redis_dir}/auth.conf", "--port", s.state.redis_port, "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", rd.redis_dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--pidfile", rd.redis_pidfile, "--logfile", rd.log("redis.log")]


def run_cmd(s: Servers) -> list[str]:
    return ["redis-server", *server_args(s), "--daemonize", "no"]


def redis_start(s: Servers) -> bool:
    if redis_pid(s) and redis_ping(s):
        LOG.info(f"redis: already running on 127.0.0.1:{s.state.redis_port}")
        return True
    loading = " (loading dump.rdb)" if nonempty(f"{s.rd.redis_dir}/dump.rdb") else ""
    LOG.info(f"starting redis on 127.0.0.1:{s.state.redis_port}{loading}")
    try:
        os.unlink(s.rd.redis_pidfile)
    except FileNotFoundError:
        pass
    console = s.rd.log("redis-console.log")
    if spawn(console, ["redis-server", *server_args(s), "--daemonize", "yes"]) != 0:
        tail_log("redis", console, s.rd.log("redis.log"))
        return False
    end = proc.now_ms() + s.timeout * 1000
    while proc.now_ms() < end:
        if redis_ping(s):
            return True
        p = proc.read_pid(s.rd.redis_pidfile)
        if p and not proc.pid_alive(p):
            break
        time.sleep(0.05)
    tail_log("redis", console, s.rd.log("redis.log"))
    return False


def redis_stop(s: Servers, mode: str) -> bool:
    """SHUTDOWN SAVE|NOSAVE (30 s), then kill; False when a SAVE shutdown had to be killed."""
    p = redis_pid(s)
    if not p:
        LOG.info("redis: not running")
        return True
    LOG.info(f"stopping redis (pid {p}, SHUTDOWN {mode.upper()})")
    redis_cli(s, 30, "shutdown", mode)
    if proc.wait_gone(30, [p]):
        return True
    if mode == "save":
        proc.kill_hard(LOG, "redis", [p])
        LOG.warn("redis: SHUTDOWN SAVE did not complete; process killed, data may not have been saved")
        return False
    return proc.kill_hard(LOG, "redis", [p])


def redis_kill(s: Servers) -> bool:
    """ctl redis kill: kill -9 (the dump stays)."""
    p = redis_pid(s)
    if not p:
        return True
    proc.kill([p], signal.SIGKILL)
    return proc.wait_gone(10, [p])


def redis_signal(s: Servers, sig: signal.Signals) -> bool:
    """ctl redis freeze|thaw: SIGSTOP / SIGCONT (a Redis that stops answering without its connections closing)."""
    p = redis_pid(s)
    if not p:
        return sig == signal.SIGCONT  # nothing running is nothing frozen
    proc.kill([p], sig)
    return True
