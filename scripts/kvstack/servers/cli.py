"""The commands of scripts/servers.sh (`python3 -m kvstack.servers ARGS`)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from kvstack import proc
from kvstack.servers import postgres, rabbitmq, redis, standby
from kvstack.servers.common import (
    LOG,
    PORT_RE,
    SELF,
    SELF_NAME,
    TEMPLATES,
    current_user,
    exec_cmd,
    is_root,
    own,
    render,
    run_procs,
    touch,
    uid_gid,
    write_secret_file,
)
from kvstack.servers.context import Servers
from kvstack.servers.credentials import ensure_credentials
from kvstack.servers.install import cmd_install, have_all
from kvstack.servers.paths import RunDirLock, UsageError, open_run_dir, usage_error
from kvstack.servers.state import write_env

USAGE_FILE = os.path.join(TEMPLATES, "usage.txt")

SOCK_LIMIT = 100


def usage_text() -> str:
    with open(USAGE_FILE, encoding="utf-8") as f:
        return f.read()


def usage() -> int:
    """The usage (templates/servers/usage.txt) on stderr; exit code 2."""
    sys.stderr.write(usage_text())
    sys.stderr.flush()
    return 2


# ---------------------------------------------------------------- run folder set-up

def node_tag(run_dir: str) -> str:
    """The run folder's name as a node name part: bytes other than A-Za-z0-9_- become '-', at most 24."""
    raw = os.path.basename(run_dir).encode()
    ok = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return bytes(c if c in ok else ord("-") for c in raw)[:24].decode()


def new_node_name(run_dir: str) -> str:
    return f"kvmesh-{node_tag(run_dir)}-{secrets.randbelow(32768):04x}{secrets.randbelow(32768):04x}@localhost"


def pg_sock_dir(pg_dir: str) -> str:
    """The socket folder: PG_DIR/sock unless that path is too long for sun_path, then a short one under /tmp."""
    sock = f"{pg_dir}/sock"
    if len(sock) + 20 > SOCK_LIMIT:
        sock = tempfile.mkdtemp(prefix="kvmesh-pgsock.", dir="/tmp")
    return sock


def check_reachable(run_dir: str) -> None:
    """Root: every service user must reach the run folder (each parent world-executable)."""
    for u in ("postgres", "rabbitmq"):
        uid, gid = uid_gid(u)
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", "test", "-x",
                            run_dir], check=False)
        if r.returncode != 0:
            LOG.die(f"RUN_DIR {run_dir} is not reachable by user {u}: every parent directory must be world-executable "
                    "(use e.g. a dir under /tmp)")


def prepare_dirs(s: Servers) -> None:
    rd = s.rd
    rmq = rd.rmq_dir(1)
    for d in (rd.pg_dir, rd.redis_dir, f"{rmq}/mnesia", f"{rmq}/home", f"{rd.logs}/rabbitmq"):
        os.makedirs(d, exist_ok=True)
    if is_root():
        for d in (rd.dir, rd.logs, rmq):
            os.chmod(d, 0o755)
        own("postgres", rd.pg_dir)
        own("rabbitmq", rmq, f"{rmq}/mnesia", f"{rmq}/home", f"{rd.logs}/rabbitmq")
        check_reachable(rd.dir)
    os.chmod(f"{rmq}/home", 0o700)
    touch(rd.log("postgres.log"))
    own("postgres", rd.log("postgres.log"))
    # Postgres socket path must fit in sun_path (107 bytes); fall back to a short dir under /tmp.
    if not s.state.pg_sock:
        s.state.pg_sock = pg_sock_dir(rd.pg_dir)
    os.makedirs(s.state.pg_sock, exist_ok=True)
    own("postgres", s.state.pg_sock)
    s.creds = ensure_credentials(rd)
    # PostgreSQL: the scripts' own psql calls (as postgres, HOME=PG_DIR) read the superuser's password from here.
    write_secret_file("postgres", f"{rd.pg_dir}/.pgpass", render("pgpass.j2", entries=[("postgres", s.c.pg_super)]))
    # Redis: the password in a 0600 file, not on a command line that ps shows.
    write_secret_file(current_user(), f"{rd.redis_dir}/auth.conf",
                      render("redis-auth.conf.j2", cred_file=rd.cred_file, password=s.c.redis))
    rabbitmq.prepare_node1(s)


def pick_ports(s: Servers) -> None:
    """Ports (free ones unless pinned by KVMESH_*_PORT) and node 1's name (kept across starts)."""
    try:
        ports = [str(p) for p in proc.free_ports(4)]
    except OSError:
        LOG.die("could not find free ports")
    st = s.state
    st.pg_port = s.env.get("KVMESH_PG_PORT", "") or ports[0]
    st.redis_port = s.env.get("KVMESH_REDIS_PORT", "") or ports[1]
    st.amqp_port = s.env.get("KVMESH_AMQP_PORT", "") or ports[2]
    st.dist_port = s.env.get("KVMESH_RABBIT_DIST_PORT", "") or ports[3]
    for p in (st.pg_port, st.redis_port, st.amqp_port, st.dist_port):
        if not PORT_RE.match(p):
            LOG.die(f"invalid port '{p}'")
        if proc.port_open(p):
            LOG.die(f"port {p} on 127.0.0.1 is already in use")
    if not st.rabbit_node:
        st.rabbit_node = new_node_name(s.rd.dir)


def choose_ports_and_folders(s: Servers) -> None:
    """Ports, node name and folders; writes servers.state, from which `stop` can clean up, even after a failed
    start; then the RabbitMQ cluster's shape."""
    pick_ports(s)
    prepare_dirs(s)
    s.state.write(s.rd.state)
    rabbitmq.cluster_prepare(s)


def servers_env_pairs(s: Servers) -> list[tuple[str, str]]:
    st, c = s.state, s.c
    return [
        ("KVMESH_PG_URL", standby.jdbc_url(s)),
        ("KVMESH_PG_USER", "kvmesh"),
        ("KVMESH_PG_PASSWORD", c.pg_app),
        ("KVMESH_PG_PORT", st.pg_port),
        ("KVMESH_REDIS_URI", f"redis://:{c.redis}@127.0.0.1:{st.redis_port}"),
        ("KVMESH_REDIS_PORT", st.redis_port),
        ("KVMESH_AMQP_URI", f"amqp://{c.amqp_user}:{c.amqp}@127.0.0.1:{st.amqp_port}/%2F"),
        ("KVMESH_CREDENTIALS_FILE", s.rd.cred_file),
        ("KVMESH_AMQP_PORT", st.amqp_port),
        ("KVMESH_RABBIT_NODE", st.rabbit_node),
        ("KVMESH_TEST_RUN_DIR", s.rd.dir),
        ("KVMESH_TEST_SERVERS", SELF),
        *rabbitmq.env_pairs(s),
        *standby.env_pairs(s),
    ]


def write_servers_env(s: Servers) -> None:
    write_env(s.rd.env_file, SELF, s.rd.dir, servers_env_pairs(s))


def claim_run_dir(arg: str | None) -> tuple[Servers, RunDirLock]:
    """The start of `start` and `prepare`: the lock, the tools, no servers of this run folder running."""
    rd = open_run_dir(arg)
    if not have_all():
        LOG.die(f"server binaries missing; run: {SELF} install")
    lock = RunDirLock(rd).acquire()
    try:
        s = Servers(rd)
        s.find_bins()
        if s.load_state():
            if run_procs(rd.dir):
                LOG.die(f"servers of {rd.dir} are already running; stop them first ({SELF} stop {rd.dir})")
            LOG.info(f"reusing data in {rd.dir} (node {s.state.rabbit_node})")
            rabbitmq.refuse_shrink(s)
    except BaseException:
        lock.release()
        raise
    return s, lock


# ---------------------------------------------------------------- commands

class Interrupted(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _interrupt(code: int) -> Callable[[int, FrameType | None], None]:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise Interrupted(code)
    return handler


def cmd_start(args: Sequence[str]) -> int:
    t0 = proc.now_ms()
    s, lock = claim_run_dir(args[0] if args else None)
    with lock:
        return start_claimed(s, t0)


def start_claimed(s: Servers, t0: int) -> int:
    try:
        os.unlink(s.rd.env_file)
    except FileNotFoundError:
        pass
    choose_ports_and_folders(s)

    def fail(what: str) -> NoReturn:
        LOG.info(f"FAILED to start {what}; stopping what was started")
        do_stop(s)
        raise SystemExit(1)

    signal.signal(signal.SIGINT, _interrupt(130))
    signal.signal(signal.SIGTERM, _interrupt(143))
    try:
        # RabbitMQ boots slowest: launch it first, prepare postgres and redis meanwhile.
        ln = rabbitmq.launch(s, s.node(1))
        if ln is None:
            fail("rabbitmq")
        t = proc.now_ms()
        if not postgres.pg_init(s) or not postgres.pg_start(s):
            fail("postgres")
        if not standby.setup(s, "start"):
            fail("postgres-standby")
        LOG.info(f"postgres ready on 127.0.0.1:{s.state.pg_port} ({proc.elapsed(t)})")
        t = proc.now_ms()
        if not redis.redis_start(s):
            fail("redis")
        LOG.info(f"redis ready on 127.0.0.1:{s.state.redis_port} ({proc.elapsed(t)})")
        t = proc.now_ms()
        if not rabbitmq.wait(s, ln):
            fail("rabbitmq")
        LOG.info(f"rabbitmq ready on 127.0.0.1:{s.state.amqp_port} ({proc.elapsed(t)} after postgres+redis)")
        if not rabbitmq.cluster_start(s):
            fail("the rabbitmq cluster")
        write_servers_env(s)
    except Interrupted as e:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        LOG.info("interrupted; stopping what was started")
        do_stop(s)
        return e.code
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    LOG.info(f"all servers up in {proc.elapsed(t0)}; env: {s.rd.env_file}")
    return 0


def cmd_prepare(args: Sequence[str]) -> int:
    s, lock = claim_run_dir(args[0] if args else None)
    with lock:
        choose_ports_and_folders(s)
        if not postgres.pg_init(s):
            LOG.die("postgres: initdb failed")
        if not standby.setup(s, "prepare"):
            LOG.die("postgres-standby: set-up failed")
        write_servers_env(s)
        return 0


def require(arg: str | None) -> Servers:
    s = Servers(open_run_dir(arg))
    s.require_state()
    return s


def run_command(s: Servers, part: str) -> tuple[list[str], str | None]:
    """What `run RUN_DIR PART` becomes (command line, working folder): first it clears what a crash of the previous
    instance left (a stale postmaster.pid and orphaned backends, broker processes of this node)."""
    if part == "postgres":
        postgres.refuse_if_fenced(s)
        postgres.pg_clear_stale(s)
        return postgres.run_cmd(s), None
    if part == "postgres-standby":
        return standby.run_cmd(s), None
    if part == "redis":
        return redis.run_cmd(s), None
    if part == "rabbitmq" or re.match(r"^rabbitmq-[0-9]", part):
        cmd, cwd = rabbitmq.run_node(s, part)
        return cmd, cwd
    LOG.die(f"usage: {SELF_NAME} run RUN_DIR postgres|redis|rabbitmq")


def cmd_run(args: Sequence[str]) -> int:
    """Becomes the server PART in the foreground (exec), for a supervisor that restarts it whenever it exits. Takes
    no lock (a supervisor may call it at any time) and keeps the supervisor's process group."""
    if len(args) != 2:
        usage_error()
    s = require(args[0])
    cmd, cwd = run_command(s, args[1])
    exec_cmd(cmd, cwd)
    return 127


def sweep(s: Servers) -> list[tuple[int, str]]:
    """Anything of this run still alive (crashed start, stuck process) is killed; what is left after that."""
    left = run_procs(s.rd.dir)
    if left:
        LOG.warn("leftover processes: " + "".join(f"{pid} {c} " for pid, c in left))
        proc.kill_hard(LOG, "leftover", [pid for pid, _ in left])
        left = run_procs(s.rd.dir)
    return left


def do_stop(s: Servers) -> bool:
    """Stops everything in the run folder (its state may be partial)."""
    s.load_state()
    s.load_credentials()  # none: Redis is killed instead of shut down
    s.find_bins()
    if s.state.rabbit_node and s.rmq_bin:
        rabbitmq.cluster_stop(s)
        rabbitmq.stop(s, s.node())
    if s.pg_bin and os.path.isfile(f"{s.rd.pg_data}/postmaster.pid"):
        postgres.pg_stop(s)
    if s.pg_bin:
        standby.stop(s)
    if s.state.redis_port:
        redis.redis_stop(s, "nosave")
    left = sweep(s)
    sock = s.state.pg_sock
    if sock and sock.startswith("/tmp/kvmesh-pgsock."):
        shutil.rmtree(sock, ignore_errors=True)
    try:
        os.unlink(s.rd.env_file)
    except FileNotFoundError:
        pass
    if left:
        LOG.warn("could not stop: " + "\n".join(f"{pid} {c}" for pid, c in left))
        return False
    return True


def cmd_stop(args: Sequence[str]) -> int:
    if not args or not args[0]:
        usage_error()
    if not os.path.isdir(args[0]):
        LOG.info(f"stop: {args[0]} does not exist; nothing to stop")
        return 0
    rd = open_run_dir(args[0])
    with RunDirLock(rd):
        t0 = proc.now_ms()
        if not do_stop(Servers(rd)):
            return 1
        LOG.info(f"stopped all servers of {rd.dir} in {proc.elapsed(t0)}")
        return 0


def up_down(up: bool) -> int:
    print("up" if up else "down", flush=True)
    return 0 if up else 3


def ctl(s: Servers, part: str, action: str) -> int:
    """One server's stop|start|status (redis also kill, freeze, thaw); the exit code."""
    key = f"{part}:{action}"
    nd = s.node()
    if key == "redis:stop":
        return 0 if redis.redis_stop(s, "save") else 1
    if key == "redis:kill":
        return 0 if redis.redis_kill(s) else 1
    if key == "redis:freeze":
        return 0 if redis.redis_signal(s, signal.SIGSTOP) else 1
    if key == "redis:thaw":
        return 0 if redis.redis_signal(s, signal.SIGCONT) else 1
    if key == "redis:start":
        if not redis.redis_start(s):
            LOG.die("redis did not start")
        return 0
    if key == "postgres:stop":
        return 0 if postgres.pg_stop(s) else 1
    if key == "postgres:start":
        if not postgres.pg_start(s):
            LOG.die("postgres did not start")
        return 0
    if key == "rabbitmq:stop":  # a cluster: every node (rabbitmq-N stops one)
        rabbitmq.cluster_stop(s)
        rabbitmq.stop(s, s.node())
        return 0
    if key == "rabbitmq:start":
        if not (rabbitmq.wait(s, rabbitmq.launch(s, nd)) and rabbitmq.cluster_start(s)):
            LOG.die("rabbitmq did not start")
        return 0
    if key == "redis:status":
        return up_down(redis.redis_ping(s))
    if key == "postgres:status":
        return up_down(bool(postgres.pg_pid(s)) and postgres.pg_ready(s))
    if key == "rabbitmq:status":
        return up_down(proc.port_open(nd.amqp_port) and bool(rabbitmq.rmq_pids(s, nd)))
    if re.match(r"^rabbitmq-[0-9]", part):
        return rabbitmq.cluster_ctl(s, part.removeprefix("rabbitmq-"), action)
    LOG.die(f"usage: {SELF_NAME} ctl RUN_DIR redis|postgres|rabbitmq stop|start|status (redis also kill: kill -9, the "
            "dump stays; freeze|thaw: SIGSTOP|SIGCONT)")


def cmd_ctl(args: Sequence[str]) -> int:
    if len(args) < 3:
        usage_error()
    rd = open_run_dir(args[0])
    part, action = args[1], args[2]
    with RunDirLock(rd):
        s = Servers(rd)
        s.require_state()
        t0 = proc.now_ms()
        rc = ctl(s, part, action)
        if rc == 0 and action != "status":
            LOG.info(f"ctl {part} {action} done in {proc.elapsed(t0)}")
        return rc


def status_lines(s: Servers) -> tuple[list[str], int]:
    st = s.state
    rc = 0
    lines = []
    up = bool(postgres.pg_pid(s)) and postgres.pg_ready(s)
    lines.append(f"postgres 127.0.0.1:{st.pg_port} {'up' if up else 'down'}")
    rc = rc if up else 3
    up = redis.redis_ping(s)
    lines.append(f"redis 127.0.0.1:{st.redis_port} {'up' if up else 'down'}")
    rc = rc if up else 3
    nd = s.node()
    up = proc.port_open(nd.amqp_port) and bool(rabbitmq.rmq_pids(s, nd))
    lines.append(f"rabbitmq 127.0.0.1:{nd.amqp_port} {nd.name} {'up' if up else 'down'}")
    rc = rc if up else 3
    more, ok = rabbitmq.cluster_status(s)
    lines += more
    rc = rc if ok else 3
    sb = standby.status_line(s)
    if sb is not None:
        lines.append(sb[0])
        rc = rc if sb[1] else 3
    return lines, rc


def cmd_status(args: Sequence[str]) -> int:
    s = require(args[0] if args else None)
    lines, rc = status_lines(s)
    for line in lines:
        print(line, flush=True)
    return rc


def cmd_env(args: Sequence[str]) -> int:
    rd = open_run_dir(args[0] if args else None)
    if not os.path.isfile(rd.env_file):
        LOG.die(f"no {rd.env_file} (servers not started or already stopped)")
    with open(rd.env_file, encoding="utf-8") as f:
        sys.stdout.write(f.read())
    sys.stdout.flush()
    return 0


def cmd_cluster_grow(args: Sequence[str]) -> int:
    if not args:
        usage_error()
    return rabbitmq.cluster_grow(require(args[0]))


def cmd_rabbitmqctl(args: Sequence[str], internal: bool = False) -> int:
    """rabbitmqctl -n NODE ARGS as the rabbitmq user (KVMESH_RMQ_INDEX: node N of a cluster)."""
    if not args and not internal:
        usage_error()
    s = require(args[0] if args else None)
    exec_cmd(rabbitmq.rmqctl_cmd(s, s.node(), *args[1:]))
    return 127


def cmd_pg_promote(args: Sequence[str]) -> int:
    rd = open_run_dir(args[0] if args else None)
    with RunDirLock(rd):
        s = Servers(rd)
        s.require_state()
        return standby.promote(s)


def cmd_pg_sync_state(args: Sequence[str]) -> int:
    s = require(args[0] if args else None)
    s.standby_vars()
    exec_cmd(standby.sync_state_cmd(s))
    return 127


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "install": lambda _args: cmd_install(),
    "start": cmd_start,
    "prepare": cmd_prepare,
    "run": cmd_run,
    "stop": cmd_stop,
    "ctl": cmd_ctl,
    "env": cmd_env,
    "status": cmd_status,
    "cluster-grow": cmd_cluster_grow,
    "rabbitmqctl": cmd_rabbitmqctl,
    "__rmqctl": lambda args: cmd_rabbitmqctl(args, internal=True),  # internal (no lock)
    "pg-promote": cmd_pg_promote,
    "pg-sync-state": cmd_pg_sync_state,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = args.pop(0) if args else ""
    if cmd not in ("rabbitmqctl", "__rmqctl"):  # a cluster node, for these two only
        os.environ.pop("KVMESH_RMQ_INDEX", None)
    proc.ensure_sys_path()
    if cmd in ("", "-h", "--help", "help"):
        return usage()
    fn = COMMANDS.get(cmd)
    if fn is None:
        print(f"[servers] unknown command: {cmd}", file=sys.stderr, flush=True)
        return usage()
    try:
        return fn(args)
    except UsageError:
        return usage()
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        LOG.error(f"{cmd}: {e}")
        return 1
