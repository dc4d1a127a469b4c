"""RabbitMQ: one node, or a cluster of KVMESH_RABBITMQ_NODES nodes on loopback.

Node 1 is servers.state's (RABBIT_NODE, AMQP_PORT, DIST_PORT, RUN_DIR/rabbitmq); nodes 2..N are named after it
(kvmesh-…-r2@localhost), live in RUN_DIR/rabbitmq-N and run from that folder, which is how their processes are told
apart. Every node lists all of them for classic-config peer discovery: a blank node joins the first one that answers;
a node with data rejoins its cluster by itself. A blank node 2..N waits for node 1 first, so the first start forms one
cluster, never several.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kvstack import proc
from kvstack.servers.common import (
    LOG,
    PORT_RE,
    SELF_NAME,
    as_user_cmd,
    dir_nonempty,
    ensure_file,
    is_root,
    own,
    render,
    run_procs,
    run_timeout,
    tail_log,
    write_secret_file,
)
from kvstack.servers.context import RmqNode, Servers, node_name
from kvstack.servers.credentials import new_cookie
from kvstack.servers.state import format_assignments, write_atomic

RMQ_COMMS = frozenset({"beam.smp", "rabbitmq-server", "erl_child_setup", "inet_gethost"})
SYSTEM_COOKIE = "/var/lib/rabbitmq/.erlang.cookie"
DIST_IFACE = "-kernel inet_dist_use_interface {127,0,0,1}"
MAX_NODES = 7


# ---------------------------------------------------------------- one node

def rmq_env(s: Servers, nd: RmqNode) -> list[str]:
    """The RABBITMQ_* environment of node nd (KVMESH_RABBITMQ_ERL_ARGS: extra emulator flags, e.g. "+S 1:1")."""
    logs = s.rd.logs
    extra = s.env.get("KVMESH_RABBITMQ_ERL_ARGS", "")
    return [
        f"RABBITMQ_NODENAME={nd.name}",
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
        f"RABBITMQ_NODE_PORT={nd.amqp_port}",
        f"RABBITMQ_DIST_PORT={nd.dist_port}",
        f"RABBITMQ_MNESIA_BASE={nd.dir}/mnesia",
        f"RABBITMQ_LOG_BASE={logs}/rabbitmq",
        f"RABBITMQ_ENABLED_PLUGINS_FILE={nd.dir}/enabled_plugins",
        f"RABBITMQ_CONFIG_FILE={nd.dir}/rabbitmq.conf",
        f"RABBITMQ_ADVANCED_CONFIG_FILE={nd.dir}/advanced.config",
        f"RABBITMQ_CONF_ENV_FILE={nd.dir}/rabbitmq-env.conf",
        f"RABBITMQ_PID_FILE={nd.pidfile}",
        f"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS={DIST_IFACE}{' ' + extra if extra else ''}",
        f"RABBITMQ_CTL_ERL_ARGS={DIST_IFACE}",
        f"ERL_CRASH_DUMP={logs}/rabbitmq/erl_crash.dump",
        "ERL_EPMD_ADDRESS=127.0.0.1",
    ]


def rmq_tool_cmd(s: Servers, nd: RmqNode, tool: str, *args: str) -> list[str]:
    """A RabbitMQ CLI tool (rabbitmqctl, rabbitmq-queues) -n NODE as the rabbitmq user."""
    return as_user_cmd("rabbitmq", nd.home, [f"{s.rmq_bin}/{tool}", "-n", nd.name, *args], rmq_env(s, nd))


def rmqctl_cmd(s: Servers, nd: RmqNode, *args: str) -> list[str]:
    return rmq_tool_cmd(s, nd, "rabbitmqctl", *args)


NICE = -10


def nice_level(env: Mapping[str, str]) -> int:
    """KVMESH_RABBITMQ_NICE (-20..19, default -10): the broker's CPU priority. Every write goes through it, and on a
    busy host its restart (Erlang boot, about 8 s of CPU) is starved by the parts waiting for it: at the default
    nice 0 a kill -9 under the fault suite's load took 18-20 s to serve again, at -10 11-15 s (docs/reliability.md).
    Only root may raise a priority; otherwise it is left as it is."""
    raw = env.get("KVMESH_RABBITMQ_NICE", "").strip() or str(NICE)
    try:
        level = int(raw)
    except ValueError:
        LOG.die(f"KVMESH_RABBITMQ_NICE must be a whole number from -20 to 19, not '{raw}'")
    if not -20 <= level <= 19:
        LOG.die(f"KVMESH_RABBITMQ_NICE must be from -20 to 19, not {level}")
    return level


def server_cmd(s: Servers, nd: RmqNode) -> list[str]:
    """The broker in the foreground as the rabbitmq user (run it from the node's folder), at its CPU priority."""
    cmd = as_user_cmd("rabbitmq", nd.home, [f"{s.rmq_bin}/rabbitmq-server"], rmq_env(s, nd))
    level = nice_level(s.env)
    if level != 0 and (level > 0 or is_root()):
        cmd = ["nice", "-n", str(level), *cmd]
    return cmd


def rmq_pids(s: Servers, nd: RmqNode) -> list[int]:
    """beam.smp + wrapper processes of node nd: one node, those of the run folder; a cluster, those working in the
    node's own folder."""
    procs = [(pid, c) for pid, c in run_procs(s.rd.dir) if c in RMQ_COMMS]
    if s.rmq_nodes > 1:
        return [pid for pid, _ in procs if proc.cwd(pid) == nd.dir]
    return [pid for pid, _ in procs]


def node_up(s: Servers, nd: RmqNode) -> bool:
    return proc.port_open(nd.amqp_port) and bool(rmq_pids(s, nd))


@dataclass
class Launch:
    """A node being started: its launcher, where its log stood, or already running."""

    node: RmqNode
    launcher: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    already: bool = False


def launch(s: Servers, nd: RmqNode) -> Launch | None:
    """Starts node nd in the foreground mode in a session of its own (instead of -detached, so early boot errors land
    in the console log); None when it could not be started at all."""
    if rmq_pids(s, nd):
        if proc.port_open(nd.amqp_port):
            LOG.info(f"rabbitmq: already running ({nd.name})")
            return Launch(nd, already=True)
        LOG.warn(f"rabbitmq: processes of {nd.name} present but port {nd.amqp_port} closed; killing them")
        proc.kill_hard(LOG, "rabbitmq", rmq_pids(s, nd))
    LOG.info(f"starting rabbitmq on 127.0.0.1:{nd.amqp_port} (node {nd.name}, dist port {nd.dist_port})")
    try:
        os.unlink(nd.pidfile)
    except FileNotFoundError:
        pass
    try:
        offset = os.path.getsize(f"{s.rd.logs}/rabbitmq/{nd.name}.log")
    except OSError:
        offset = 0
    with open(s.rd.log("rabbitmq-console.log"), "ab") as out:
        try:
            p = subprocess.Popen(server_cmd(s, nd), cwd=nd.dir, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, close_fds=True, start_new_session=True)
        except OSError as e:
            LOG.error(f"rabbitmq: {e}")
            return None
    with open(f"{nd.dir}/launcher.pid", "w", encoding="utf-8") as f:
        f.write(f"{p.pid}\n")
    return Launch(nd, p, offset)


def startup_complete(logf: str, offset: int) -> bool:
    try:
        with open(logf, "rb") as f:
            f.seek(offset)
            return b"Server startup complete" in f.read()
    except OSError:
        return False


def wait(s: Servers, ln: Launch | None) -> bool:
    """Until node ln.node answers (port, `Server startup complete`, rabbitmqctl await_startup)."""
    if ln is None:
        return False
    if ln.already:
        return True
    nd = ln.node
    logf = f"{s.rd.logs}/rabbitmq/{nd.name}.log"
    console = s.rd.log("rabbitmq-console.log")
    end = proc.now_ms() + s.timeout * 1000
    while True:
        if proc.port_open(nd.amqp_port) and startup_complete(logf, ln.log_offset):
            break
        if ln.launcher is None or ln.launcher.poll() is not None:
            LOG.info("rabbitmq: server process exited during startup")
            tail_log("rabbitmq", console, logf)
            return False
        if proc.now_ms() >= end:
            LOG.info(f"rabbitmq: not ready after {s.timeout}s")
            tail_log("rabbitmq", console, logf)
            return False
        time.sleep(0.2)
    # Confirms the node is reachable by the CLI (cookie, dist port) - stop/ctl rely on it.
    rc, _ = run_timeout(s.timeout + 10, rmqctl_cmd(s, nd, "await_startup", "--timeout", str(s.timeout)),
                        logf=s.rd.log("rabbitmq-ctl.log"))
    if rc != 0:
        LOG.info("rabbitmq: rabbitmqctl await_startup failed")
        tail_log("rabbitmq", s.rd.log("rabbitmq-ctl.log"), logf)
        return False
    return True


def stop(s: Servers, nd: RmqNode) -> bool:
    pids = rmq_pids(s, nd)
    if not pids:
        LOG.info("rabbitmq: not running")
        return True
    beam = proc.read_pid(nd.pidfile)
    LOG.info(f"stopping rabbitmq (node {nd.name}, pids {' '.join(map(str, pids))})")
    if proc.pid_alive(beam) and proc.port_open(nd.amqp_port):
        ctl_log = s.rd.log("rabbitmq-ctl.log")
        rc, _ = run_timeout(45, rmqctl_cmd(s, nd, "stop", "--idempotent", nd.pidfile), logf=ctl_log)
        if rc != 0:
            LOG.warn(f"rabbitmq: rabbitmqctl stop failed (see {ctl_log})")
        if proc.wait_gone(15, pids):
            return True
    # not (fully) booted or not stopping: kill
    proc.kill_hard(LOG, "rabbitmq", rmq_pids(s, nd))
    return True


def kill_node(s: Servers, nd: RmqNode) -> bool:
    """ctl rabbitmq-N kill: SIGKILL to the node's beam (its pid file)."""
    p = proc.read_pid(nd.pidfile)
    if proc.pid_alive(p) and p is not None:
        proc.kill([p], signal.SIGKILL)
        return proc.wait_gone(10, [p])
    return False


def run_node(s: Servers, part: str) -> tuple[list[str], str]:
    """`run RUN_DIR rabbitmq` or `run RUN_DIR rabbitmq-N`: what a crash left is killed; the command line and folder to
    exec. A blank node 2..N first waits (bounded) for node 1 to answer, so that its first boot joins node 1's
    cluster."""
    if part == "rabbitmq":
        nd = s.node()
        label = "rabbitmq (left from a crash)"
    else:
        n = part.removeprefix("rabbitmq-")
        nd = s.select(n)
        label = f"rabbitmq node {n} (left from a crash)"
        if nd.index != 1 and not dir_nonempty(nd.mnesia):
            proc.wait_until(lambda: proc.port_open(s.state.amqp_port), 120)
    left = rmq_pids(s, nd)
    if left:
        proc.kill_hard(LOG, label, left)
    try:
        os.unlink(nd.pidfile)
    except FileNotFoundError:
        pass
    return server_cmd(s, nd), nd.dir


# ---------------------------------------------------------------- folders and configuration

DISK_FREE_LIMIT = "1GB"
DISK_FREE_LIMIT_FORM = re.compile(r"[1-9][0-9]*(kB|MB|GB|KiB|MiB|GiB)?")


def disk_free_limit(env: Mapping[str, str]) -> str:
    """KVMESH_RABBITMQ_DISK_FREE_LIMIT, else 1GB: below this much free disk the broker refuses publishes (its disk
    alarm). RabbitMQ's own 50MB default is too close to full: a disk filled faster than the broker polls it reaches
    ENOSPC first, which corrupts quorum queue segments (the fault suite saw it: docs/reliability.md)."""
    value = env.get("KVMESH_RABBITMQ_DISK_FREE_LIMIT") or DISK_FREE_LIMIT
    if not DISK_FREE_LIMIT_FORM.fullmatch(value):
        LOG.die(f"KVMESH_RABBITMQ_DISK_FREE_LIMIT must be a size such as 1GB, 512MB or 2GiB (got '{value}')")
    return value


def conf_text(user: str, secret: str, cluster_nodes: list[str], disk_limit: str = DISK_FREE_LIMIT) -> str:
    """rabbitmq.conf: the one user (kvmesh's, the only one), logs, the disk alarm's limit, and for a cluster the
    classic-config peer list."""
    return render("rabbitmq.conf.j2", user=user, amqp_secret=secret, cluster_nodes=cluster_nodes,
                  disk_free_limit=disk_limit)


def prepare_node1(s: Servers) -> None:
    """Node 1's config, empty plugin list, own env file (ignores /etc/rabbitmq), own Erlang cookie. Its one user is
    created at the first boot from default_user/default_pass: no other user ever exists."""
    d = s.rd.rmq_dir(1)
    home = f"{d}/home"
    ensure_file(f"{d}/enabled_plugins", "[].\n")
    ensure_file(f"{d}/rabbitmq-env.conf")
    write_secret_file("rabbitmq", f"{d}/rabbitmq.conf", conf_text(s.c.amqp_user, s.c.amqp, [],
                                                                        disk_free_limit(s.env)))
    cookie = f"{home}/.erlang.cookie"
    if not (os.path.exists(cookie) and os.path.getsize(cookie) > 0):
        # Reuse the system cookie when readable (so a plain `rabbitmqctl -n NODE` as the rabbitmq user works too).
        text = ""
        try:
            if os.access(SYSTEM_COOKIE, os.R_OK):
                with open(SYSTEM_COOKIE, encoding="utf-8", errors="replace") as f:
                    text = f.read()
        except OSError:
            text = ""
        with open(cookie, "w", encoding="utf-8") as f:
            f.write(text or new_cookie())
    os.chmod(cookie, 0o400)
    own("rabbitmq", f"{d}/enabled_plugins", f"{d}/rabbitmq-env.conf", f"{d}/rabbitmq.conf", cookie)


def wanted_nodes(s: Servers) -> int | None:
    """KVMESH_RABBITMQ_NODES when it is set (1..7; anything else dies), else None."""
    raw = s.env.get("KVMESH_RABBITMQ_NODES", "")
    if not raw:
        return None
    if not (len(raw) == 1 and "1" <= raw <= str(MAX_NODES)):
        LOG.die(f"KVMESH_RABBITMQ_NODES must be 1..{MAX_NODES} (got '{raw}')")
    return int(raw)


def refuse_shrink(s: Servers) -> None:
    """Before anything of the run folder changes: its broker may grow (cluster_prepare), never shrink. Every quorum
    queue has a member on each node; taking nodes away means rabbitmq-queues shrink and forget_cluster_node on the
    running cluster, which kvmesh does not do, and starting fewer nodes would leave the queues without a majority."""
    want = wanted_nodes(s)
    if want is not None and want < s.rmq_nodes:
        LOG.die(f"rabbitmq: {s.rd.dir} runs a cluster of {s.rmq_nodes} nodes and KVMESH_RABBITMQ_NODES={want} would "
                f"shrink it, which kvmesh does not do (its quorum queues have a member on every node). Nothing was "
                f"changed. Unset KVMESH_RABBITMQ_NODES (or set it to {s.rmq_nodes}) to start it as it is, or let the "
                "consumers drain the queues, stop it and start a fresh run folder.")


def cluster_ports_wanted(s: Servers, want: int) -> list[str]:
    """The ports of nodes 2..want (AMQP, dist each): those nodes 2..N already have (a grown cluster keeps them), then
    KVMESH_RABBIT_CLUSTER_PORTS' next ones, or free ones that none of the other servers has."""
    have = list(s.cluster_ports)
    need = (want - 1) * 2 - len(have)
    if need <= 0:
        return have[: (want - 1) * 2]
    pinned = s.env.get("KVMESH_RABBIT_CLUSTER_PORTS", "")
    if pinned:
        ports = [p for p in pinned.replace(",", " ").split() if p not in have][:need]
    else:
        st = s.state
        taken = {st.pg_port, s.standby_port, st.redis_port, st.amqp_port, st.dist_port, *have}
        try:
            ports = [str(p) for p in proc.free_ports(need + 5) if str(p) not in taken]
        except OSError:
            ports = []
    if len(ports) < need:
        LOG.die(f"rabbitmq cluster: need {need} ports for nodes {len(have) // 2 + 2}..{want}, have {len(ports)}")
    for p in ports[:need]:
        if not PORT_RE.match(p):
            LOG.die(f"invalid port '{p}'")
        if proc.port_open(p):
            LOG.die(f"port {p} on 127.0.0.1 is already in use")
    return have + ports[:need]


def cluster_prepare(s: Servers) -> None:
    """After the folders and servers.state: the other nodes' ports (kept across starts), folders, cookie, configs.

    A run folder keeps its nodes; KVMESH_RABBITMQ_NODES above that count grows the broker: node 1 keeps its data
    (queues, messages not yet applied), the new nodes start blank and join it, and once the stack is up every quorum
    queue gets a member on each of them (cluster_grow). A smaller count was refused before (refuse_shrink)."""
    f = s.rd.rmq_cluster_state
    s.cluster_load()
    want = wanted_nodes(s) or 1
    refuse_shrink(s)
    if want > s.rmq_nodes:
        grown_from = s.rmq_nodes if (os.path.isfile(f) or dir_nonempty(s.node(1).mnesia)) else 0
        ports = cluster_ports_wanted(s, want)
        write_atomic(f, format_assignments([("RMQ_NODES", str(want)), ("RMQ_CLUSTER_PORTS", ",".join(ports))]))
        s.cluster_load()
        if grown_from:
            LOG.info(f"rabbitmq: growing the broker of {s.rd.dir} from {grown_from} to {want} nodes: node 1 keeps its "
                     "data, the new nodes join it, and every quorum queue gets a member on each once the stack is up")
    if s.rmq_nodes <= 1:
        return
    names = [node_name(s.state.rabbit_node, n) for n in range(1, s.rmq_nodes + 1)]
    cookie = f"{s.rd.rmq_dir(1)}/home/.erlang.cookie"
    for n in range(s.rmq_nodes, 0, -1):
        nd = s.node(n)
        os.makedirs(nd.mnesia, exist_ok=True)
        os.makedirs(nd.home, exist_ok=True)
        if is_root():
            os.chmod(nd.dir, 0o755)
            own("rabbitmq", nd.dir, nd.mnesia, nd.home)
        os.chmod(nd.home, 0o700)
        if n != 1:
            ensure_file(f"{nd.dir}/enabled_plugins", "[].\n")
            ensure_file(f"{nd.dir}/rabbitmq-env.conf")
            # one Erlang cookie for the whole cluster: node 1's (0400, owned by rabbitmq)
            mine = f"{nd.home}/.erlang.cookie"
            try:
                os.unlink(mine)
            except FileNotFoundError:
                pass
            shutil.copyfile(cookie, mine)
            os.chmod(mine, 0o400)
            own("rabbitmq", f"{nd.dir}/enabled_plugins", f"{nd.dir}/rabbitmq-env.conf", mine)
        write_secret_file("rabbitmq", f"{nd.dir}/rabbitmq.conf.new", conf_text(s.c.amqp_user, s.c.amqp, names,
                                                                                      disk_free_limit(s.env)))
        os.replace(f"{nd.dir}/rabbitmq.conf.new", f"{nd.dir}/rabbitmq.conf")
    LOG.info(f"rabbitmq: a cluster of {s.rmq_nodes} nodes: {s.cluster_address()}")


def env_pairs(s: Servers) -> list[tuple[str, str]]:
    """Extra servers.env lines of a cluster."""
    if s.rmq_nodes <= 1:
        return []
    return [("KVMESH_RABBITMQ_NODES", str(s.rmq_nodes)), ("KVMESH_AMQP_ADDRESSES", s.cluster_address()),
            ("KVMESH_AMQP_QUORUM_SIZE", str(min(s.rmq_nodes, 3)))]


# ---------------------------------------------------------------- cluster operations

def cluster_start(s: Servers) -> bool:
    """`start`: node 1 is up; the others boot together and join it."""
    if s.rmq_nodes <= 1:
        return True
    t = proc.now_ms()
    launches = []
    for n in range(2, s.rmq_nodes + 1):
        ln = launch(s, s.select(n))
        if ln is None:
            s.select(1)
            return False
        launches.append(ln)
    for ln in launches:
        s.select(ln.node.index)
        if not wait(s, ln):
            s.select(1)
            return False
    s.select(1)
    LOG.info(f"rabbitmq cluster of {s.rmq_nodes} nodes ready ({proc.elapsed(t)} after node 1): {s.cluster_address()}")
    return True


def cluster_stop(s: Servers) -> None:
    """Nodes N..2 (node 1 is stopped by the caller)."""
    for n in range(s.rmq_nodes, 1, -1):
        stop(s, s.select(n))
    if s.rmq_nodes > 1:
        s.select(1)


def cluster_grow(s: Servers) -> int:
    """Every quorum queue gets a member on every node (rabbitmq-queues grow NODE all, idempotent), then their leaders
    are spread over the nodes (rabbitmq-queues rebalance quorum). x-quorum-initial-group-size only counts the nodes
    in the cluster when a queue is declared: queues declared while nodes were still joining are completed here."""
    if s.rmq_nodes <= 1:
        LOG.info("cluster-grow: one rabbitmq node, nothing to do")
        return 0
    rc = 0
    for n in range(1, s.rmq_nodes + 1):
        nd = s.select(n)
        if not node_up(s, nd):
            LOG.warn(f"cluster-grow: rabbitmq node {n} is down; skipped")
            rc = 1
            continue
        code, out = run_timeout(24 * 3600, rmq_tool_cmd(s, nd, "rabbitmq-queues", "-q", "grow", nd.name, "all"),
                                capture=True)
        if code == 0:
            added = sum(1 for ln in out.splitlines() if "ok" in ln)
            LOG.info(f"cluster-grow: node {n} member of every quorum queue ({added} added)")
        else:
            LOG.warn(f"cluster-grow: node {n}: {out.rstrip(chr(10))[:300]}")
            rc = 1
    nd = s.select(1)
    # leaders of queues declared on one node all sit there: spread them, so a node's loss stops only its share
    if rc == 0:
        code, _ = run_timeout(24 * 3600, rmq_tool_cmd(s, nd, "rabbitmq-queues", "-q", "rebalance", "quorum"))
        if code == 0:
            LOG.info("cluster-grow: quorum queue leaders spread over the nodes")
        else:
            LOG.warn("cluster-grow: rabbitmq-queues rebalance quorum failed")
    return rc


def cluster_status(s: Servers) -> tuple[list[str], bool]:
    """One line per node of a cluster (rabbitmq-N ADDRESS NODE up|down); True when all are up."""
    if s.rmq_nodes <= 1:
        return [], True
    lines = []
    ok = True
    for nd in s.nodes():
        up = node_up(s, nd)
        ok = ok and up
        lines.append(f"rabbitmq-{nd.index} 127.0.0.1:{nd.amqp_port} {nd.name} {'up' if up else 'down'}")
    return lines, ok


def cluster_ctl(s: Servers, n: str, action: str) -> int:
    """ctl RUN_DIR rabbitmq-N stop|start|status|kill."""
    nd = s.select(n)
    if action == "stop":
        stop(s, nd)
        return 0
    if action == "start":
        if not wait(s, launch(s, nd)):
            LOG.die(f"rabbitmq node {n} did not start")
        return 0
    if action == "kill":
        return 0 if kill_node(s, nd) else 1
    if action == "status":
        up = node_up(s, nd)
        print("up" if up else "down", flush=True)
        return 0 if up else 3
    LOG.die(f"usage: {SELF_NAME} ctl RUN_DIR rabbitmq-N stop|start|status|kill")
