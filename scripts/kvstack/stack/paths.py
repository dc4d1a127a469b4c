"""The run folder: its files, the lock, the supervisor socket, the servers' env file and the parts it runs."""
from __future__ import annotations

import glob
import os
import re
from collections.abc import MutableMapping

from kvstack import proc
from kvstack.envfile import read_env_file
from kvstack.stack.settings import LOG, Settings, md5_prefix

SOCK_MAX = 100  # a unix socket's path must fit in 108 bytes


def supervisor_socket(run_dir: str) -> str:
    """RUN_DIR/supervisor.sock, or /tmp/kvmesh-supervisor-<hash>.sock for a long run folder."""
    sock = f"{run_dir}/supervisor.sock"
    if len(sock) > SOCK_MAX:
        sock = f"/tmp/kvmesh-supervisor-{md5_prefix(run_dir, 16)}.sock"
    return sock


class RunDir:
    """RUN_DIR (created, made absolute and physical) and the files start.sh keeps in it."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = os.path.realpath(path)
        self.pids = f"{self.path}/pids"
        self.logs = f"{self.path}/logs"
        self.conf = f"{self.path}/conf"
        self.secrets = f"{self.path}/secrets"
        self.stack_env = f"{self.path}/stack.env"
        self.servers_env_file = f"{self.path}/servers.env"
        self.sv_conf = f"{self.conf}/supervisord.conf"
        self.sv_pidfile = f"{self.path}/supervisord.pid"
        self.sv_sock = supervisor_socket(self.path)
        self._lock_fd: int | None = None
        for d in (self.pids, self.logs, self.conf):
            os.makedirs(d, exist_ok=True)

    def lock(self, secs: float = 300) -> None:
        """Serialises start.sh commands on this run folder (flock -w 300); the fd is not inherited by children."""
        if self._lock_fd is not None:
            return
        fd = proc.flock_wait(f"{self.path}/.stack.lock", secs, 0o666)
        if fd is None:
            LOG.die(f"another start.sh is working on {self.path}")
        self._lock_fd = fd

    def servers_env(self) -> dict[str, str]:
        """scripts/servers.sh's servers.env (export NAME=VALUE), values unquoted; {} before prepare."""
        return read_env_file(self.servers_env_file)

    def servers_port(self, name: str) -> str:
        return self.servers_env().get(name, "")


def rabbitmq_nodes(run: RunDir, environ: MutableMapping[str, str]) -> int:
    """A prepared run folder keeps its cluster; else KVMESH_RABBITMQ_NODES; 1..7."""
    n = run.servers_env().get("KVMESH_RABBITMQ_NODES", "").replace("'", "").replace('"', "")
    n = n or environ.get("KVMESH_RABBITMQ_NODES") or "1"
    if not re.fullmatch(r"[1-7]", n):
        LOG.die(f"KVMESH_RABBITMQ_NODES must be 1..7 (got '{n}')")
    return int(n)


def rabbitmq_parts(run: RunDir, environ: MutableMapping[str, str]) -> list[str]:
    n = rabbitmq_nodes(run, environ)
    return ["rabbitmq"] if n == 1 else [f"rabbitmq-{i}" for i in range(1, n + 1)]


def pg_standby_parts(run: RunDir) -> list[str]:
    return ["postgres-standby"] if run.servers_port("KVMESH_PG_STANDBY_PORT") else []


def server_parts(run: RunDir, environ: MutableMapping[str, str]) -> list[str]:
    return ["postgres", *pg_standby_parts(run), "redis", *rabbitmq_parts(run, environ)]


def java_parts(s: Settings) -> list[str]:
    return [*(f"kv-service-{i}" for i in range(1, s.replicas + 1)),
            *(f"kv-consumer-{i}" for i in range(1, s.consumers + 1))]


def all_parts(s: Settings, run: RunDir, environ: MutableMapping[str, str]) -> list[str]:
    prometheus = ["prometheus"] if s.prometheus == "1" else []
    return [*server_parts(run, environ), *java_parts(s), "envoy", "nginx", *prometheus]


def rabbitmq_node_log(run: RunDir, n: str) -> str:
    """The broker's own log of node N."""
    node = run.servers_env().get("KVMESH_RABBIT_NODE", "").replace("'", "").replace('"', "")
    if n != "1":
        node = f"{node.rsplit('@', 1)[0]}-r{n}@{node.split('@', 1)[1] if '@' in node else node}"
    return f"{run.logs}/rabbitmq/{node}.log"


def log_file(run: RunDir, part: str) -> str:
    """The log that `logs PART` follows ("" when there is none)."""
    if part == "nginx-access":
        return f"{run.path}/nginx/logs/access.log"
    if part == "nginx-error":
        return f"{run.path}/nginx/logs/error.log"
    if part == "rabbitmq":
        logs = [f for f in sorted(glob.glob(f"{run.logs}/rabbitmq/*.log")) if "upgrade" not in f]
        return logs[0] if logs else ""
    m = re.fullmatch(r"rabbitmq-([0-9].*)", part)
    if m:
        return rabbitmq_node_log(run, m.group(1))
    return f"{run.logs}/{part}.log"


def read_partitions(run: RunDir, environ: MutableMapping[str, str]) -> str:
    """Partition queues: KVMESH_PARTITIONS, else the count the run folder keeps (RUN_DIR/partitions), else 8 for a
    folder whose broker predates the record, else 1; kept in RUN_DIR/partitions and exported to every part."""
    f = f"{run.path}/partitions"
    if environ.get("KVMESH_PARTITIONS"):
        n = environ["KVMESH_PARTITIONS"]
    elif os.path.isfile(f):
        with open(f, encoding="utf-8") as fh:
            n = fh.read().rstrip("\n")
    elif os.path.isdir(f"{run.path}/rabbitmq"):
        n = "8"
    else:
        n = "1"
    if not (re.fullmatch(r"[1-9][0-9]{0,3}", n) and int(n) <= 1024):
        LOG.die(f"KVMESH_PARTITIONS must be 1..1024 (got '{n}')")
    with open(f, "w", encoding="utf-8") as fh:
        fh.write(n + "\n")
    environ["KVMESH_PARTITIONS"] = n
    return n
