"""One command's view of a run folder: its paths, servers.state, credentials, binaries, the RabbitMQ cluster's shape
and the PostgreSQL standby's port (what the shell kept in globals)."""
from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from kvstack.servers.common import LOG, SELF_NAME, nonempty, start_timeout
from kvstack.servers.credentials import Credentials, read_credentials
from kvstack.servers.install import pg_bindir, rabbit_bin
from kvstack.servers.paths import RunDir
from kvstack.servers.state import State, read_assignments


@dataclass(frozen=True)
class RmqNode:
    """One RabbitMQ node of the run: node 1 is servers.state's; nodes 2..N are named after it (…-rN@host)."""

    index: int
    name: str
    amqp_port: str
    dist_port: str
    dir: str

    @property
    def home(self) -> str:
        return f"{self.dir}/home"

    @property
    def pidfile(self) -> str:
        return f"{self.dir}/rabbit.pid"

    @property
    def mnesia(self) -> str:
        return f"{self.dir}/mnesia"


def node_name(base: str, n: int) -> str:
    """rmq_node_name: node 1 is base, node N base's name with -rN before the @."""
    if n == 1:
        return base
    name, _, host = base.partition("@")
    return f"{name}-r{n}@{host}" if host else f"{name}-r{n}@{name}"


@dataclass
class Servers:
    rd: RunDir
    env: MutableMapping[str, str] = field(default_factory=lambda: os.environ)
    state: State = field(default_factory=State)
    creds: Credentials | None = None
    pg_bin: str = ""
    rmq_bin: str = ""
    rmq_nodes: int = 1
    cluster_ports: list[str] = field(default_factory=list)
    rmq_index: int = 1
    standby_port: str = ""
    _timeout: int | None = None

    # ------------------------------------------------------------ loading

    @property
    def timeout(self) -> int:
        if self._timeout is None:
            self._timeout = start_timeout(self.env)
        return self._timeout

    def find_bins(self) -> None:
        self.pg_bin = pg_bindir()
        self.rmq_bin = rabbit_bin()

    def load_state(self) -> bool:
        """servers.state and the cluster's shape; False when there is no servers.state."""
        st = State.load(self.rd.state)
        self.state = st or State()
        if st is None:
            return False
        self.cluster_load()
        return True

    def cluster_load(self) -> None:
        """rabbitmq-cluster.state (RMQ_NODES, RMQ_CLUSTER_PORTS); KVMESH_RMQ_INDEX selects a node of a cluster."""
        self.rmq_nodes = 1
        self.cluster_ports = []
        self.rmq_index = 1
        values = read_assignments(self.rd.rmq_cluster_state)
        if values is not None:
            raw = values.get("RMQ_NODES", "1") or "1"
            self.rmq_nodes = int(raw) if raw.isdigit() else 1
            self.cluster_ports = [p for p in values.get("RMQ_CLUSTER_PORTS", "").replace(",", " ").split() if p]
        idx = self.env.get("KVMESH_RMQ_INDEX", "")
        if idx and self.rmq_nodes > 1:
            self.select(idx)

    def load_credentials(self) -> bool:
        self.creds = read_credentials(self.rd)
        return self.creds is not None

    def require_state(self) -> None:
        if not self.load_state():
            LOG.die(f"no servers.state in {self.rd.dir} (was '{SELF_NAME} start {self.rd.dir}' run?)")
        self.find_bins()
        if not self.load_credentials():
            LOG.die(f"no {self.rd.cred_file} (was '{SELF_NAME} start {self.rd.dir}' run?)")

    @property
    def c(self) -> Credentials:
        """The credentials (loaded by require_state / ensure_credentials)."""
        if self.creds is None:
            return Credentials("", "", "", "", "")
        return self.creds

    # ------------------------------------------------------------ rabbitmq nodes

    def select(self, n: int | str) -> RmqNode:
        """rmq_select: node n is the current one from here on; dies for a node the run does not have."""
        s = str(n)
        if not (s.isdigit() and 1 <= int(s) <= self.rmq_nodes):
            LOG.die(f"no rabbitmq node {s} (nodes: 1..{self.rmq_nodes})")
        self.rmq_index = int(s)
        return self.node()

    def node(self, n: int | None = None) -> RmqNode:
        n = self.rmq_index if n is None else n
        st = self.state
        if n == 1:
            return RmqNode(1, st.rabbit_node, st.amqp_port, st.dist_port, self.rd.rmq_dir(1))
        ports = self.cluster_ports
        amqp = ports[(n - 2) * 2] if len(ports) > (n - 2) * 2 else ""
        dist = ports[(n - 2) * 2 + 1] if len(ports) > (n - 2) * 2 + 1 else ""
        return RmqNode(n, node_name(st.rabbit_node, n), amqp, dist, self.rd.rmq_dir(n))

    def nodes(self) -> list[RmqNode]:
        return [self.node(n) for n in range(1, self.rmq_nodes + 1)]

    def cluster_address(self) -> str:
        return ",".join(f"127.0.0.1:{nd.amqp_port}" for nd in self.nodes())

    # ------------------------------------------------------------ standby

    def standby_on(self) -> bool:
        return self.env.get("KVMESH_PG_STANDBY", "0") == "1" or nonempty(self.rd.pgs_state)

    def standby_vars(self) -> None:
        """pg_standby_vars: the standby's port (pg-standby.state) and the replication password."""
        values = read_assignments(self.rd.pgs_state) or {}
        self.standby_port = values.get("PG_STANDBY_PORT", "")

    @property
    def repl_pass(self) -> str:
        """KVMESH_PG_REPLICATION_PASSWORD: the last such line of credentials.env."""
        try:
            with open(self.rd.cred_file, encoding="utf-8") as f:
                lines = [ln.rstrip("\n")[len("KVMESH_PG_REPLICATION_PASSWORD="):] for ln in f
                         if ln.startswith("KVMESH_PG_REPLICATION_PASSWORD=")]
        except OSError:
            return ""
        return lines[-1] if lines else ""


def env_with(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    out = dict(env)
    out.update(extra)
    return out
