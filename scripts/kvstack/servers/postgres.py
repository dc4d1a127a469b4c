"""The PostgreSQL primary: initdb (the kvmesh role and database), start/stop by pg_ctl, the foreground command line."""
from __future__ import annotations

import os
import re
import shutil
import signal
import string
import time
from collections.abc import Callable

from kvstack import proc
from kvstack.servers.common import (
    LOG,
    as_user_cmd,
    quiet,
    render,
    run_logged,
    run_procs,
    spawn,
    tail_log,
    write_secret_file,
)
from kvstack.servers.context import Servers

TRUST_LINE = re.compile(r"^\s*[^#\s].*\strust\s*$")


def pg_cmd(s: Servers, binary: str, *args: str, home: str | None = None, envs: tuple[str, ...] = ()) -> list[str]:
    """A PostgreSQL binary run as postgres (HOME = the primary's folder: its .pgpass)."""
    return as_user_cmd("postgres", home or s.rd.pg_dir, [f"{s.pg_bin}/{binary}", *args], envs)


def psql_cmd(s: Servers, port: str, *args: str) -> list[str]:
    return pg_cmd(s, "psql", "-h", s.state.pg_sock, "-p", port, "-U", "postgres", "-d", "postgres", *args)


def pg_pid(s: Servers, data: str | None = None) -> int | None:
    p = proc.read_pid(f"{data or s.rd.pg_data}/postmaster.pid")
    return p if proc.pid_alive(p) else None


def pg_ready(s: Servers, port: str | None = None) -> bool:
    return quiet(psql_cmd(s, port or s.state.pg_port, "-XqAtc", "select 1")).returncode == 0


def trust_lines(hba_text: str) -> list[str]:
    return [ln for ln in hba_text.splitlines() if TRUST_LINE.match(ln)]


INIT_SQL = string.Template("CREATE ROLE kvmesh LOGIN CREATEDB PASSWORD '$app'\n"
                           "CREATE DATABASE kvmesh OWNER kvmesh ENCODING 'UTF8'\n")


def init_sql(app_password: str) -> str:
    return INIT_SQL.substitute(app=app_password)


def pg_init(s: Servers) -> bool:
    """initdb, then the kvmesh role and database in single-user mode (no server, no port needed), in a scratch folder
    renamed into place at the end: a data folder either exists complete or not at all."""
    rd = s.rd
    if os.path.exists(f"{rd.pg_data}/PG_VERSION") and os.path.getsize(f"{rd.pg_data}/PG_VERSION") > 0:
        return True
    scratch = f"{rd.pg_dir}/data.init"
    initdb_log = rd.log("postgres-initdb.log")
    LOG.info(f"postgres: initdb {rd.pg_data}")
    shutil.rmtree(scratch, ignore_errors=True)
    # scram-sha-256 for every connection, the local socket too (no trust line); the superuser's password from a file
    # that exists only while initdb runs
    pwfile = f"{rd.pg_dir}/initdb.pw"
    write_secret_file("postgres", pwfile, s.c.pg_super + "\n")
    ok = run_logged(initdb_log, pg_cmd(s, "initdb", "-D", scratch, "-U", "postgres", "--auth=scram-sha-256",
                                       f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C", "--no-sync"))
    try:
        os.unlink(pwfile)
    except FileNotFoundError:
        pass
    if not ok:
        tail_log("postgres", initdb_log)
        return False
    with open(f"{scratch}/pg_hba.conf", encoding="utf-8") as f:
        if trust_lines(f.read()):
            LOG.die("postgres: initdb wrote a trust line into pg_hba.conf")
    if not run_logged(initdb_log, pg_cmd(s, "postgres", "--single", "-D", scratch, "-c", "listen_addresses=",
                                         "-c", "exit_on_error=on", "-c", "password_encryption=scram-sha-256",
                                         "postgres"), stdin_text=init_sql(s.c.pg_app)):
        tail_log("postgres", initdb_log)
        return False
    with open(f"{scratch}/postgresql.conf", "a", encoding="utf-8") as f:
        f.write(render("postgresql.conf.j2"))
    os.rename(scratch, rd.pg_data)
    return True


def server_args(s: Servers) -> list[str]:
    """What the primary is started with, by pg_ctl (start) and in the foreground (run)."""
    return ["-p", s.state.pg_port, "-k", s.state.pg_sock, "-c", "listen_addresses=127.0.0.1"]


def run_cmd(s: Servers) -> list[str]:
    """`run RUN_DIR postgres`: the primary in the foreground as postgres."""
    return pg_cmd(s, "postgres", "-D", s.rd.pg_data, *server_args(s))


def orphans(s: Servers, data: str) -> list[int]:
    """postgres processes of this run working in data (not the other server's)."""
    return [pid for pid, c in run_procs(s.rd.dir) if c == "postgres" and proc.cwd(pid) == data]


def clear_stale(s: Servers, label: str, data: str, port: str) -> None:
    """After a crash (postmaster killed), postgres refuses to start while postmaster.pid names a pid that still
    exists (even as an unreaped zombie) or old backends are alive: wait for / kill orphans, drop the stale file."""
    if not os.path.isfile(f"{data}/postmaster.pid") or pg_pid(s, data):
        return
    left = orphans(s, data)
    if left and not proc.wait_gone(5, left):
        proc.kill_hard(LOG, label, left)
    LOG.warn(f"{label}: removing stale postmaster.pid and socket lock")
    sock = f"{s.state.pg_sock}/.s.PGSQL.{port}"
    for f in (f"{data}/postmaster.pid", sock, f"{sock}.lock"):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass


def pg_clear_stale(s: Servers) -> None:
    clear_stale(s, "postgres", s.rd.pg_data, s.state.pg_port)


def refuse_if_fenced(s: Servers) -> None:
    """The old primary after a switchover never starts again by itself: no two primaries."""
    if not os.path.isfile(s.rd.pg_fence):
        return
    with open(s.rd.pg_fence, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\n")
    LOG.die(f"postgres: fenced after a switchover ({first}); the primary is now postgres-standby. Make this one a "
            f"standby again by hand (docs/reliability.md), then delete {s.rd.pg_dir}/FENCED")


def start_cmd(s: Servers) -> list[str]:
    return pg_cmd(s, "pg_ctl", "-D", s.rd.pg_data, "-l", s.rd.log("postgres.log"), "-w", "-t", str(s.timeout),
                  "-o", " ".join(server_args(s)), "start")


def pg_start(s: Servers) -> bool:
    refuse_if_fenced(s)
    if pg_pid(s):
        for _ in range(s.timeout * 10):
            if pg_ready(s):
                LOG.info(f"postgres: already running on 127.0.0.1:{s.state.pg_port}")
                return True
            if not pg_pid(s):
                break
            time.sleep(0.1)
    pg_clear_stale(s)
    LOG.info(f"starting postgres on 127.0.0.1:{s.state.pg_port}")
    return spawn_ready(s, "postgres", start_cmd(s), lambda: pg_ready(s))


def spawn_ready(s: Servers, part: str, cmd: list[str], ready: Callable[[], bool]) -> bool:
    """pg_ctl start (cmd) with its output in logs/PART-ctl.log, then up to 5 s until the server answers; the end of
    its logs when it does not."""
    ctl_log, server_log = s.rd.log(f"{part}-ctl.log"), s.rd.log(f"{part}.log")
    if spawn(ctl_log, cmd) != 0:
        tail_log(part, ctl_log, server_log)
        return False
    if proc.wait_until(ready, 5):
        return True
    tail_log(part, server_log)
    return False


def stop_server(s: Servers, label: str, data: str, home: str, ctl_log: str, pid: int) -> bool:
    """pg_ctl stop -m fast (30 s); else SIGQUIT (immediate shutdown), then kill."""
    if run_logged(ctl_log, pg_cmd(s, "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop", home=home)):
        return True
    if label == "postgres":
        LOG.warn("postgres: pg_ctl stop failed; immediate shutdown")
    proc.kill([pid], signal.SIGQUIT)
    return proc.wait_gone(10, [pid]) or proc.kill_hard(LOG, label, [pid])


def pg_stop(s: Servers) -> bool:
    p = pg_pid(s)
    if not p:
        LOG.info("postgres: not running")
        return True
    LOG.info(f"stopping postgres (pid {p})")
    ok = stop_server(s, "postgres", s.rd.pg_data, s.rd.pg_dir, s.rd.log("postgres-ctl.log"), p)
    proc.wait_gone(10, [p])
    return ok
