"""The PostgreSQL standby (KVMESH_PG_STANDBY=1).

A second PostgreSQL, a hot standby streaming from the primary (pg_basebackup -R, a replication slot), on its own port
and data folder (RUN_DIR/postgres-standby). Replication is synchronous (synchronous_standby_names on the primary,
synchronous_commit = on): a commit returns only once the standby has flushed it, so a promotion loses nothing that was
committed, hence nothing a consumer acknowledged to the broker. The cost: each commit waits for the standby's flush
too, and while the standby is down commits on the primary wait for it. The standby itself runs with
synchronous_standby_names = '' so that, once promoted and alone, it does not wait for a standby it does not have.
The replication role `replicator` has its own generated password (KVMESH_PG_REPLICATION_PASSWORD in
RUN_DIR/secrets/credentials.env); initdb's pg_hba.conf already has scram-sha-256 replication lines for 127.0.0.1.
After a switchover (pg-promote) the old primary is fenced (RUN_DIR/postgres/FENCED): it refuses to start, so two
primaries can never run; making it a standby again is manual (docs/operations: pg_rewind or a new pg_basebackup).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import string
import time
from datetime import UTC, datetime

from kvstack import proc
from kvstack.servers.common import (
    LOG,
    PORT_RE,
    nonempty,
    own,
    quiet,
    render,
    run_logged,
    tail_log,
    touch,
    write_secret_file,
)
from kvstack.servers.context import Servers
from kvstack.servers.credentials import add_replication_password
from kvstack.servers.postgres import (
    clear_stale,
    pg_cmd,
    pg_pid,
    pg_ready,
    pg_start,
    pg_stop,
    psql_cmd,
    spawn_ready,
)
from kvstack.servers.state import format_assignments

HBA_REPLICATION = re.compile(r"^host\s+replication\s+all\s+127\.0\.0\.1/32\s+scram-sha-256")
HBA_LINE = "host    replication     replicator      127.0.0.1/32            scram-sha-256\n"
MARK = "# ---- kvmesh standby"


def jdbc_url(s: Servers) -> str:
    """Both servers when there is a standby: the driver connects to whichever is the primary."""
    if s.standby_on() and s.standby_port:
        return (f"jdbc:postgresql://127.0.0.1:{s.state.pg_port},127.0.0.1:{s.standby_port}/kvmesh"
                "?targetServerType=primary&hostRecheckSeconds=2")
    return f"jdbc:postgresql://127.0.0.1:{s.state.pg_port}/kvmesh"


def env_pairs(s: Servers) -> list[tuple[str, str]]:
    """Extra servers.env lines: the standby's port."""
    if not s.standby_on():
        return []
    return [("KVMESH_PG_STANDBY_PORT", s.standby_port), ("KVMESH_PG_STANDBY", "1")]


def prepare(s: Servers, avoid: tuple[str, ...] = ()) -> None:
    """Port, folder, credentials and .pgpass of the standby (before servers.state/servers.env are written)."""
    if not s.standby_on():
        return
    rd = s.rd
    s.standby_vars()
    pinned = s.env.get("KVMESH_PG_STANDBY_PORT", "")
    if pinned:
        s.standby_port = pinned
    elif not s.standby_port or proc.port_open(s.standby_port) or s.standby_port == s.state.pg_port:
        try:
            taken = [int(p) for p in (s.state.pg_port, *avoid) if p and p.isdigit()]
            s.standby_port = str(proc.free_ports(1, avoid=taken)[0])
        except OSError:
            LOG.die("could not find a free port for the standby")
    if not PORT_RE.match(s.standby_port):
        LOG.die(f"invalid port '{s.standby_port}'")
    if s.standby_port == s.state.pg_port:
        LOG.die(f"the standby's port {s.standby_port} is the primary's")
    if proc.port_open(s.standby_port):
        LOG.die(f"port {s.standby_port} on 127.0.0.1 is already in use")
    with open(rd.pgs_state, "w", encoding="utf-8") as f:
        f.write(format_assignments([("PG_STANDBY_PORT", s.standby_port)]))
    os.makedirs(rd.pgs_dir, exist_ok=True)
    own("postgres", rd.pgs_dir)
    touch(rd.log("postgres-standby.log"))
    own("postgres", rd.log("postgres-standby.log"))
    if not s.repl_pass:
        add_replication_password(rd)
    # the standby's walreceiver (as postgres, HOME=the standby's folder) and pg_basebackup read the replication
    # password here; the superuser's line serves the scripts' psql calls against the standby
    write_secret_file("postgres", f"{rd.pgs_dir}/.pgpass",
                      render("pgpass.j2", entries=[("replicator", s.repl_pass), ("postgres", s.c.pg_super)]))


def configure_primary(s: Servers) -> bool:
    """Synchronous replication settings in the primary's postgresql.conf (once); True when it changed them."""
    conf = f"{s.rd.pg_data}/postgresql.conf"
    with open(conf, encoding="utf-8") as f:
        if any(ln.startswith(MARK) for ln in f):
            return False
    with open(conf, "a", encoding="utf-8") as f:
        f.write(render("postgresql-primary-standby.conf.j2"))
    hba = f"{s.rd.pg_data}/pg_hba.conf"
    with open(hba, encoding="utf-8") as f:
        has = any(HBA_REPLICATION.match(ln) for ln in f)
    if not has:
        with open(hba, "a", encoding="utf-8") as f:
            f.write(HBA_LINE)
    return True


def replication_sql(password: str) -> str:
    # synchronous_commit = local: no standby exists yet to wait for
    return ("SET synchronous_commit = local;\n"
            "SELECT 'CREATE ROLE replicator REPLICATION LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            "'replicator') \\gexec\n"
            + string.Template("ALTER ROLE replicator PASSWORD '$pw';\n").substitute(pw=password) +
            "SELECT pg_create_physical_replication_slot('kvmesh_standby') WHERE NOT EXISTS (SELECT FROM "
            "pg_replication_slots WHERE slot_name = 'kvmesh_standby');\n")


def strip_primary_conninfo(path: str) -> None:
    """sed -i '/^primary_conninfo/d' (in place: the file keeps its owner and mode)."""
    with open(path, "r+", encoding="utf-8") as f:
        kept = [ln for ln in f.readlines() if not ln.startswith("primary_conninfo")]
        f.seek(0)
        f.writelines(kept)
        f.truncate()


def init(s: Servers) -> bool:
    """The replication role on the running primary, then the standby's data by pg_basebackup -R."""
    rd = s.rd
    if nonempty(f"{rd.pgs_data}/PG_VERSION"):
        return True
    LOG.info(f"postgres-standby: replication role and pg_basebackup from 127.0.0.1:{s.state.pg_port}")
    initdb_log = rd.log("postgres-initdb.log")
    if not run_logged(initdb_log, psql_cmd(s, s.state.pg_port, "-XqAt", "-v", "ON_ERROR_STOP=1"),
                      stdin_text=replication_sql(s.repl_pass)):
        tail_log("postgres", initdb_log)
        return False
    scratch = f"{rd.pgs_dir}/data.init"
    shutil.rmtree(scratch, ignore_errors=True)
    bb_log = rd.log("postgres-standby-basebackup.log")
    if not run_logged(bb_log, basebackup_cmd(s, scratch)):
        tail_log("postgres-standby", bb_log)
        return False
    try:
        os.unlink(f"{scratch}/FENCED")
    except FileNotFoundError:
        pass
    auto = f"{scratch}/postgresql.auto.conf"
    strip_primary_conninfo(auto)
    with open(auto, "a", encoding="utf-8") as f:
        f.write(render("postgresql-standby.auto.conf.j2"))
    os.chmod(scratch, 0o700)
    os.rename(scratch, rd.pgs_data)
    return True


def basebackup_cmd(s: Servers, target: str) -> list[str]:
    return pg_cmd(s, "pg_basebackup", "-h", "127.0.0.1", "-p", s.state.pg_port, "-U", "replicator", "-D", target,
                  "-R", "-X", "stream", "-S", "kvmesh_standby", "-c", "fast", "--no-sync",
                  home=s.rd.pgs_dir, envs=(f"PGPASSFILE={s.rd.pgs_dir}/.pgpass",))


def server_args(s: Servers) -> list[str]:
    """The standby's options (the primary's current port in primary_conninfo)."""
    return ["-p", s.standby_port, "-k", s.state.pg_sock, "-c", "listen_addresses=127.0.0.1",
            "-c", "cluster_name=kvmesh_standby",
            "-c", f"primary_conninfo=host=127.0.0.1 port={s.state.pg_port} user=replicator "
                  f"passfile={s.rd.pgs_dir}/.pgpass application_name=kvmesh_standby"]


def pg_ctl_opts(args: list[str]) -> str:
    """pg_ctl -o: every option single-quoted (its own quotes dropped)."""
    return " ".join("'" + a.replace("'", "") + "'" for a in args)


def standby_pid(s: Servers) -> int | None:
    return pg_pid(s, s.rd.pgs_data)


def standby_ready(s: Servers) -> bool:
    return pg_ready(s, s.standby_port)


def setup(s: Servers, mode: str) -> bool:
    """Everything the standby needs. `start` (throwaway servers) leaves primary and standby running; `prepare`
    (start.sh) starts the primary only for the base backup and stops it again."""
    if not s.standby_on():
        return True
    prepare(s, avoid=(s.state.redis_port, s.state.amqp_port, s.state.dist_port, *s.cluster_ports))
    changed = configure_primary(s)
    if pg_pid(s) and changed:
        pg_stop(s)
    if not nonempty(f"{s.rd.pgs_data}/PG_VERSION"):
        if os.path.isfile(s.rd.pg_fence):
            LOG.die(f"postgres-standby: no standby data and the primary is fenced ({s.rd.pg_fence}): rebuild by hand "
                    "(docs)")
        if not pg_start(s) or not init(s):
            return False
        if mode != "start":
            pg_stop(s)
    if mode == "start":
        if not pg_pid(s) and not os.path.isfile(s.rd.pg_fence) and not pg_start(s):
            return False
        if not start(s):
            return False
    return True


def start_cmd(s: Servers) -> list[str]:
    return pg_cmd(s, "pg_ctl", "-D", s.rd.pgs_data, "-l", s.rd.log("postgres-standby.log"), "-w", "-t",
                  str(s.timeout), "-o", pg_ctl_opts(server_args(s)), "start", home=s.rd.pgs_dir)


def start(s: Servers) -> bool:
    if standby_pid(s) and standby_ready(s):
        LOG.info("postgres-standby: already running")
        return True
    clear_stale(s, "postgres-standby", s.rd.pgs_data, s.standby_port)
    LOG.info(f"starting postgres-standby on 127.0.0.1:{s.standby_port}")
    return spawn_ready(s, "postgres-standby", start_cmd(s), lambda: standby_ready(s))


def stop(s: Servers) -> bool:
    if not s.standby_on():
        return True
    s.standby_vars()
    p = standby_pid(s)
    if not p:
        return True
    LOG.info(f"stopping postgres-standby (pid {p})")
    if run_logged(s.rd.log("postgres-standby-ctl.log"),
                  pg_cmd(s, "pg_ctl", "-D", s.rd.pgs_data, "-m", "fast", "-w", "-t", "30", "stop", home=s.rd.pgs_dir)):
        return True
    proc.kill([p], signal.SIGQUIT)
    return proc.wait_gone(10, [p]) or proc.kill_hard(LOG, "postgres-standby", [p])


def run_cmd(s: Servers) -> list[str]:
    """`run RUN_DIR postgres-standby`: the standby (or, once promoted, the primary) in the foreground."""
    if not s.standby_on():
        LOG.die(f"no standby in {s.rd.dir} (start it with KVMESH_PG_STANDBY=1)")
    s.standby_vars()
    clear_stale(s, "postgres-standby", s.rd.pgs_data, s.standby_port)
    return pg_cmd(s, "postgres", "-D", s.rd.pgs_data, *server_args(s), home=s.rd.pgs_dir)


def status_line(s: Servers) -> tuple[str, bool] | None:
    """The standby's role and state: `postgres-standby 127.0.0.1:PORT [standby|primary ]up|down`."""
    if not s.standby_on():
        return None
    s.standby_vars()
    up = False
    role = ""
    if standby_pid(s) and standby_ready(s):
        up = True
        r = quiet(psql_cmd(s, s.standby_port, "-XqAtc",
                           "select case when pg_is_in_recovery() then 'standby' else 'primary' end"))
        role = r.stdout.rstrip("\n") if r.returncode == 0 else ""
    return f"postgres-standby 127.0.0.1:{s.standby_port} {role + ' ' if role else ''}{'up' if up else 'down'}", up


SYNC_STATE_SQL = ("select application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) "
                  "from pg_stat_replication")


def sync_state_cmd(s: Servers) -> list[str]:
    return psql_cmd(s, s.state.pg_port, "-XqAtc", SYNC_STATE_SQL)


def fence_text(port: str, now: datetime | None = None) -> str:
    t = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S")
    return f"fenced by pg-promote at {t} UTC: postgres-standby (port {port}) was promoted\n"


def promote(s: Servers) -> int:
    """Fence the old primary (stopped), promote the standby, wait until it takes writes."""
    rd = s.rd
    if not s.standby_on():
        LOG.die(f"no standby in {rd.dir}")
    s.standby_vars()
    p = pg_pid(s)
    if p:
        LOG.die(f"the primary (pid {p}) still runs: stop it first (./start.sh pg-switchover does)")
    if not (standby_pid(s) and standby_ready(s)):
        LOG.die("postgres-standby is not running")
    with open(rd.pg_fence, "w", encoding="utf-8") as f:
        f.write(fence_text(s.standby_port))
    t0 = proc.now_ms()
    ctl_log = rd.log("postgres-standby-ctl.log")
    if not run_logged(ctl_log, pg_cmd(s, "pg_ctl", "-D", rd.pgs_data, "-w", "-t", "60", "promote", home=rd.pgs_dir)):
        LOG.die(f"pg_ctl promote failed (log: {ctl_log})")
    for _ in range(300):
        r = quiet(psql_cmd(s, s.standby_port, "-XqAtc", "select pg_is_in_recovery()"))
        if r.stdout.rstrip("\n") == "f":
            LOG.info(f"postgres-standby promoted: primary on 127.0.0.1:{s.standby_port} ({proc.elapsed(t0)}); old "
                     f"primary fenced ({rd.pg_fence})")
            return 0
        time.sleep(0.1)
    LOG.die("postgres-standby did not leave recovery")

