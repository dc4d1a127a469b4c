"""Settings of the stack: the environment, else ./.env, else the defaults; validation and auth resolution."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from kvstack.proc import Log

LOG = Log("kvmesh")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_dotenv(root: str, environ: MutableMapping[str, str]) -> None:
    """KEY=VALUE lines of ROOT/.env into environ, for variables not already set (start.sh's load_dotenv)."""
    path = os.path.join(root, ".env")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        line = line.lstrip(" \t\n\r\v\f")
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key = line.split("=", 1)[0]
        val = line.split("=", 1)[1] if "=" in line else line
        if not _IDENT.fullmatch(key):
            continue
        val = val.removesuffix('"').removeprefix('"').removesuffix("'").removeprefix("'")
        if key not in environ:
            environ[key] = val


def md5_prefix(text: str, n: int) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:n]


def nobody_can_enter(root: str) -> bool:
    """`setpriv` as nobody (65534) can `test -x` the clone's folder."""
    try:
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "test", "-x", root],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    return res.returncode == 0


def default_run_dir(root: str, euid: int | None = None, can_enter: bool | None = None) -> str:
    """./.run, unless this runs as root and the clone lies in a folder other users cannot enter (mktemp -d, /root):
    PostgreSQL and RabbitMQ run as their own users, so the run folder is then /var/tmp/kvmesh-run-<hash of the path>."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        if can_enter is None:
            can_enter = nobody_can_enter(root)
        if not can_enter:
            return f"/var/tmp/kvmesh-run-{md5_prefix(root, 12)}"
    return f"{root}/.run"


def is_loopback(bind: str) -> bool:
    return bind.startswith("127.") or bind in ("::1", "localhost")


def resolve_auth(setting: str, bind: str) -> str:
    """on|off from KVMESH_AUTH: auto turns it on as soon as nginx listens beyond loopback; warns about an open store."""
    if setting in ("on", "off"):
        auth = setting
    elif setting == "auto":
        auth = "off" if is_loopback(bind) else "on"
    else:
        LOG.die(f"KVMESH_AUTH must be auto, on or off (got '{setting}')")
    if not is_loopback(bind) and auth != "on":
        LOG.warn(f"KVMESH_AUTH=off with nginx on {bind}: anyone who reaches it can read and write every key")
    return auth


def split_ports(text: str) -> list[str]:
    """`IFS=', ' read -r -a`: commas and spaces separate; an empty field between two commas stays."""
    text = text.strip(" \t\n")
    if not text:
        return []
    words = re.split(r"[ \t\n]*,[ \t\n]*|[ \t\n]+", text)
    if words and words[-1] == "" and len(words) > 1:
        words.pop()
    return words


def _valid_port(p: str) -> bool:
    return p.isascii() and p.isdigit() and 1 <= int(p) <= 65535


@dataclass
class Settings:
    root: str
    mode: str = "auto"
    run_dir: str = ""
    http_port: str = "8088"
    http_bind: str = "127.0.0.1"
    auth: str = "off"
    envoy_port: str = "8080"
    admin_port: str = "9901"
    replicas: int = 2
    consumers: int = 2
    java_opts: str = "-Xmx512m"
    aot: str = "on"
    venv: str = ""
    timeout: str = "120"
    replica_ports: list[str] = field(default_factory=list)
    consumer_ports: list[str] = field(default_factory=list)  # empty: free ports are picked at start
    replica_admin_ports: list[str] = field(default_factory=list)
    prometheus: str = "0"
    prom_port: str = ""

    @property
    def timeout_secs(self) -> int:
        try:
            return int(self.timeout)
        except ValueError:
            LOG.die(f"KVMESH_START_TIMEOUT must be a number of seconds (got '{self.timeout}')")

    def all_ports(self) -> list[str]:
        ports = [self.http_port, self.envoy_port, self.admin_port, *self.replica_ports[: self.replicas],
                 *self.consumer_ports[: self.consumers], *self.replica_admin_ports[: self.replicas]]
        return ports + self.prom_port.split()

    def stack_env(self) -> list[tuple[str, str]]:
        """stack.env's lines (read back by load_stack_env, scripts/e2e.sh, the fault tests, kvctl, the benchmarks)."""
        return [
            ("KVMESH_HTTP_PORT", self.http_port), ("KVMESH_ENVOY_PORT", self.envoy_port),
            ("KVMESH_ENVOY_ADMIN_PORT", self.admin_port), ("KVMESH_HTTP_BIND", self.http_bind),
            ("KVMESH_AUTH", self.auth), ("KVMESH_REPLICAS", str(self.replicas)),
            ("KVMESH_CONSUMERS", str(self.consumers)),
            ("KVMESH_REPLICA_PORTS", ",".join(self.replica_ports[: self.replicas])),
            ("KVMESH_CONSUMER_HTTP_PORTS", ",".join(self.consumer_ports[: self.consumers])),
            ("KVMESH_REPLICA_ADMIN_PORTS", ",".join(self.replica_admin_ports[: self.replicas])),
            ("KVMESH_PROMETHEUS", self.prometheus), ("KVMESH_PROMETHEUS_PORT", self.prom_port),
        ]

    def apply_stack_env(self, env: dict[str, str]) -> None:
        """A running stack's own settings (its stack.env) win over the environment for stop/status/logs/restart."""
        self.http_port = env.get("KVMESH_HTTP_PORT", "")
        self.envoy_port = env.get("KVMESH_ENVOY_PORT", "")
        self.admin_port = env.get("KVMESH_ENVOY_ADMIN_PORT", "")
        self.http_bind = env.get("KVMESH_HTTP_BIND") or "127.0.0.1"
        self.auth = env.get("KVMESH_AUTH") or "off"
        self.replicas = int(env.get("KVMESH_REPLICAS") or 0)
        self.consumers = int(env.get("KVMESH_CONSUMERS") or 0)

        def ports(name: str) -> list[str]:
            v = env.get(name, "")
            return v.split(",") if v else []

        self.replica_ports = ports("KVMESH_REPLICA_PORTS")
        self.consumer_ports = ports("KVMESH_CONSUMER_HTTP_PORTS")
        self.replica_admin_ports = ports("KVMESH_REPLICA_ADMIN_PORTS")
        self.prometheus = env.get("KVMESH_PROMETHEUS") or "0"
        self.prom_port = env.get("KVMESH_PROMETHEUS_PORT") or ""


def from_environ(root: str, environ: MutableMapping[str, str], run_dir_default: str | None = None) -> Settings:
    """start.sh's settings(): loads ./.env into environ, applies the defaults, dies (exit 1) on an invalid value."""
    load_dotenv(root, environ)
    e = environ.get
    s = Settings(root=root)
    s.mode = e("KVMESH_MODE") or "auto"
    s.run_dir = e("KVMESH_RUN_DIR") or (run_dir_default if run_dir_default is not None else default_run_dir(root))
    s.http_port = e("KVMESH_HTTP_PORT") or "8088"
    s.http_bind = e("KVMESH_HTTP_BIND") or "127.0.0.1"
    s.auth = resolve_auth(e("KVMESH_AUTH") or "auto", s.http_bind)
    s.envoy_port = e("KVMESH_ENVOY_PORT") or "8080"
    s.admin_port = e("KVMESH_ENVOY_ADMIN_PORT") or "9901"
    replicas = e("KVMESH_REPLICAS") or "2"
    consumers = e("KVMESH_CONSUMERS") or "2"
    s.java_opts = e("KVMESH_JAVA_OPTS") or "-Xmx512m"
    s.aot = e("KVMESH_AOT") or "on"
    if s.aot not in ("on", "off"):
        LOG.die(f"KVMESH_AOT must be on or off (got '{s.aot}')")
    s.venv = e("KVMESH_ENVOY_VENV") or f"{root}/.run/venv"
    s.timeout = e("KVMESH_START_TIMEOUT") or "120"
    if not re.fullmatch(r"[1-9][0-9]*", replicas):
        LOG.die(f"KVMESH_REPLICAS must be >= 1 (got '{replicas}')")
    if not re.fullmatch(r"[1-9][0-9]*", consumers):
        LOG.die(f"KVMESH_CONSUMERS must be >= 1 (got '{consumers}')")
    s.replicas, s.consumers = int(replicas), int(consumers)
    if e("KVMESH_REPLICA_PORTS"):
        s.replica_ports = split_ports(e("KVMESH_REPLICA_PORTS") or "")
        if len(s.replica_ports) < s.replicas:
            LOG.die(f"KVMESH_REPLICA_PORTS lists {len(s.replica_ports)} ports for {s.replicas} replicas")
    else:
        base = e("KVMESH_REPLICA_BASE_PORT") or "9091"
        if not re.fullmatch(r"-?[0-9]+", base):
            LOG.die(f"invalid port '{base}'")
        s.replica_ports = [str(int(base) + i) for i in range(s.replicas)]
    if e("KVMESH_CONSUMER_HTTP_PORTS"):
        s.consumer_ports = split_ports(e("KVMESH_CONSUMER_HTTP_PORTS") or "")
        if len(s.consumer_ports) < s.consumers:
            LOG.die(f"KVMESH_CONSUMER_HTTP_PORTS lists {len(s.consumer_ports)} ports for {s.consumers} consumers")
    if e("KVMESH_REPLICA_ADMIN_PORTS"):
        s.replica_admin_ports = split_ports(e("KVMESH_REPLICA_ADMIN_PORTS") or "")
        if len(s.replica_admin_ports) < s.replicas:
            LOG.die(f"KVMESH_REPLICA_ADMIN_PORTS lists {len(s.replica_admin_ports)} ports for {s.replicas} replicas")
    s.prometheus = e("KVMESH_PROMETHEUS") or "0"
    s.prom_port = e("KVMESH_PROMETHEUS_PORT") or ""
    for p in s.all_ports():
        if not _valid_port(p):
            LOG.die(f"invalid port '{p}'")
    return s


def docker_usable(mode: str) -> bool:
    """Docker mode: KVMESH_MODE=docker, or auto and `docker info` works (10 s at most)."""
    if mode == "native":
        return False
    if mode == "docker":
        if not shutil.which("docker"):
            LOG.die("KVMESH_MODE=docker but no docker command")
        return True
    if not shutil.which("docker"):
        return False
    try:
        res = subprocess.run(["docker", "info"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0
