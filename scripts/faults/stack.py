"""The stack under test, seen from outside: where its processes are, how to kill, stop, start and repair a part,
and how to ask PostgreSQL, Redis and RabbitMQ what they hold.

Everything is found through the run folder that ./start.sh was given (KVMESH_RUN_DIR): stack.env, servers.env,
pid files, or supervisord's control socket once start.sh runs the parts under supervisord. `find_pid` is the one
place that knows how; the rest of the suite names parts only (kv-service-1, kv-consumer-2, envoy, nginx, redis,
postgres, rabbitmq).
"""
from __future__ import annotations

import glob
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import xmlrpc.client

# what the process of each part is called in /proc/PID/comm (Linux truncates comm to 15 characters)
COMM = {"kv-service": "java", "kv-consumer": "java", "envoy": "envoy", "nginx": "nginx",
        "redis": "redis-server", "postgres": "postgres", "postgres-standby": "postgres", "rabbitmq": "beam.smp"}
SERVERS = ("redis", "postgres", "rabbitmq")
# names a supervisord program of each part might have
SUPERVISOR_ALIASES = {"redis": ("redis", "redis-server"), "postgres": ("postgres", "postgresql"),
                      "rabbitmq": ("rabbitmq", "rabbitmq-server")}
# the words ./start.sh status uses for a part's state
STATES = ("healthy", "unhealthy", "restarting", "failed", "stopped", "up", "down")


def part_kind(part: str) -> str:
    return re.sub(r"-\d+$", "", part)


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export`ed, shell-quoted) of stack.env / servers.env."""
    out: dict[str, str] = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = line.removeprefix("export ")
            key, _, val = line.partition("=")
            try:
                words = shlex.split(val)
            except ValueError:
                words = [val]
            out[key] = words[0] if words else ""
    return out


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except OSError:
        return False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid: int) -> list[int]:
    return [p for p in _all_pids() if _ppid(p) == pid]


def _read_pid_file(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
        return int(first) if first.isdigit() else None
    except OSError:
        return None


def port_open(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class Stack:
    def __init__(self, root: str, run_dir: str):
        self.root = root
        self.run_dir = os.path.realpath(run_dir)
        self.stack_env = read_env_file(os.path.join(self.run_dir, "stack.env"))
        self.servers_env = read_env_file(os.path.join(self.run_dir, "servers.env"))
        self.http_port = int(self.stack_env["KVMESH_HTTP_PORT"])
        self.envoy_port = int(self.stack_env["KVMESH_ENVOY_PORT"])
        self.replicas = int(self.stack_env.get("KVMESH_REPLICAS", "2"))
        self.consumers = int(self.stack_env.get("KVMESH_CONSUMERS", "2"))
        pg = urllib.parse.urlparse(self.servers_env["KVMESH_PG_URL"].removeprefix("jdbc:"))
        # a multi-host URL (a standby: 127.0.0.1:P1,127.0.0.1:P2) names the first primary first
        pg_host, _, pg_port = pg.netloc.split(",")[0].rpartition("@")[2].partition(":")
        self.pg = {"host": pg_host or "127.0.0.1", "port": pg_port or "5432", "db": pg.path.lstrip("/"),
                   "user": self.servers_env.get("KVMESH_PG_USER", "kvmesh"),
                   "password": self.servers_env.get("KVMESH_PG_PASSWORD", "")}
        rd = urllib.parse.urlparse(self.servers_env["KVMESH_REDIS_URI"])
        self.redis_port = rd.port or 6379
        self.redis_password = urllib.parse.unquote(rd.password) if rd.password else None
        self.amqp_port = int(self.servers_env.get("KVMESH_AMQP_PORT", "0"))
        # a RabbitMQ cluster (KVMESH_RABBITMQ_NODES > 1): parts rabbitmq-1..N, node i at amqp_ports[i - 1]
        self.rabbit_nodes = int(self.servers_env.get("KVMESH_RABBITMQ_NODES", "1"))
        self.amqp_ports = [int(a.rsplit(":", 1)[1]) for a in
                           self.servers_env.get("KVMESH_AMQP_ADDRESSES", "").split(",") if a.strip()] or [self.amqp_port]
        self.env = dict(os.environ, KVMESH_MODE="native", KVMESH_RUN_DIR=self.run_dir)

    # ------------------------------------------------------------------ finding processes

    def parts(self) -> list[str]:
        return ([f"kv-service-{i}" for i in range(1, self.replicas + 1)]
                + [f"kv-consumer-{i}" for i in range(1, self.consumers + 1)]
                + ["envoy", "nginx", "redis", "postgres"] + self.rabbit_parts())

    def rabbit_parts(self) -> list[str]:
        if self.rabbit_nodes <= 1:
            return ["rabbitmq"]
        return [f"rabbitmq-{i}" for i in range(1, self.rabbit_nodes + 1)]

    def rabbit_dir(self, part: str) -> str:
        """The folder a RabbitMQ node runs in (and is told apart by): rabbitmq/ for node 1, rabbitmq-N/ else."""
        n = part.rsplit("-", 1)[1] if re.fullmatch(r"rabbitmq-\d+", part) else "1"
        return os.path.join(self.run_dir, "rabbitmq" if n == "1" else f"rabbitmq-{n}")

    def find_pid(self, part: str) -> int | None:
        """The live process of PART in this run folder, or None.

        Asks supervisord first (if start.sh runs one for this run folder), then the pid files start.sh and
        scripts/servers.sh write, then /proc. A supervised or recorded pid that is a wrapper (a shell, setpriv,
        the rabbitmq-server script) is followed down to the real process, so `kill -9` hits the server itself."""
        comm = COMM[part_kind(part)]
        candidates = [self._supervisor_pid(part)] + self._pid_file_candidates(part)
        for pid in candidates:
            real = self._resolve(pid, comm) if pid else None
            if real and self._belongs(real, part):
                return real
        return self._scan(part, comm)

    def _pid_file_candidates(self, part: str) -> list[int | None]:
        r = self.run_dir
        files = {"redis": [f"{r}/redis/redis.pid"], "postgres": [f"{r}/postgres/data/postmaster.pid"],
                 "postgres-standby": [f"{r}/postgres-standby/data/postmaster.pid"],
                 "rabbitmq": [f"{r}/rabbitmq/rabbit.pid", f"{r}/rabbitmq/launcher.pid"]}
        if re.fullmatch(r"rabbitmq-\d+", part):
            files[part] = [os.path.join(self.rabbit_dir(part), "rabbit.pid")]
        return [_read_pid_file(p) for p in files.get(part, [f"{r}/pids/{part}.pid"])]

    def _resolve(self, pid: int, comm: str) -> int | None:
        """PID itself if it is the COMM process, else its first descendant that is (breadth first)."""
        queue, seen = [pid], set()
        while queue:
            p = queue.pop(0)
            if p in seen or not pid_alive(p):
                continue
            seen.add(p)
            if _comm(p) == comm:
                return p
            queue.extend(children(p))
        return None

    def _belongs(self, pid: int, part: str) -> bool:
        """PID is PART of this run: named by its command line, or (servers) working inside the run folder."""
        if not pid_alive(pid):
            return False
        cmd = _cmdline(pid)
        kind = part_kind(part)
        if kind in ("kv-service", "kv-consumer"):
            return f"-Dkvmesh.run={self.run_dir}" in cmd and f"-Dkvmesh.part={part} " in cmd + " "
        if kind == "nginx":
            return "master process" in cmd and self.run_dir in cmd
        if kind in ("postgres", "postgres-standby") and _comm(_ppid(pid)) == "postgres":
            return False  # a backend or auxiliary process, not the postmaster
        cwd = _cwd(pid)
        if kind == "rabbitmq" and self.rabbit_nodes > 1:
            return cwd == self.rabbit_dir(part)   # each node runs in its own folder
        if kind in ("postgres", "postgres-standby"):   # two servers in one run folder (a standby): by data folder
            return cwd == f"{self.run_dir}/{kind}/data"
        return self.run_dir in cmd or cwd == self.run_dir or cwd.startswith(self.run_dir + "/")

    def _scan(self, part: str, comm: str) -> int | None:
        for pid in sorted(_all_pids()):
            if _comm(pid) == comm and self._belongs(pid, part):
                return pid
        return None

    # supervisord: start.sh's native mode runs every part as a program of one supervisord per run folder. Its pids
    # are asked over supervisord's own XML-RPC socket (what supervisorctl uses), which is cheap enough to poll.
    def _supervisor_conf(self) -> str | None:
        for pattern in ("conf/supervisord.conf", "supervisord.conf", "*/supervisor*.conf"):
            found = sorted(glob.glob(os.path.join(self.run_dir, pattern)))
            if found:
                return found[0]
        return None

    def supervised(self) -> bool:
        return self._supervisor_conf() is not None

    def _supervisor_rpc(self):
        conf = self._supervisor_conf()
        if not conf:
            return None
        with open(conf, encoding="utf-8") as f:
            m = re.search(r"^serverurl\s*=\s*unix://(.+)$", f.read(), re.M)
        if not m:
            return None
        return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(m.group(1).strip()
                                                                                       .replace("%%", "%")))

    def _supervisor_pid(self, part: str) -> int | None:
        rpc = self._supervisor_rpc()
        if rpc is None:
            return None
        try:
            for info in rpc.supervisor.getAllProcessInfo():
                if info["name"] in SUPERVISOR_ALIASES.get(part, (part,)) and info["statename"] == "RUNNING":
                    return int(info["pid"]) or None
        except (OSError, xmlrpc.client.Error, KeyError, ValueError):
            pass
        return None

    def _supervisorctl(self, *args: str, timeout: float = 150) -> str:
        conf = self._supervisor_conf()
        try:
            res = subprocess.run(["supervisorctl", "-c", conf, *args], capture_output=True, text=True,
                                 timeout=timeout, env=self.env)
            return f"supervisorctl {' '.join(args)}: {(res.stdout + res.stderr).strip()[:160]}"
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"supervisorctl {' '.join(args)}: {type(e).__name__}"

    # ------------------------------------------------------------------ acting on parts

    def kill9(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def children_of(self, pid: int) -> list[int]:
        return children(pid)

    def part_up(self, part: str) -> bool:
        """The part has a live process and (servers) answers on its port."""
        pid = self.find_pid(part)
        if not pid:
            return False
        if part == "redis":
            return self.redis_ping()
        if part == "postgres":
            return port_open(int(self.pg["port"]))
        if part == "rabbitmq":
            return port_open(self.amqp_port)
        if part.startswith("rabbitmq-"):
            return port_open(self.amqp_ports[int(part.rsplit("-", 1)[1]) - 1])
        return True

    def stop_server(self, part: str) -> str:
        """Stops a server the way an operator would and keeps it stopped: gracefully, Redis saving its data first
        (SHUTDOWN SAVE; under supervisord SAVE, then the supervisor's stop)."""
        if self.supervised():
            saved = f"SAVE {self.redis('SAVE', timeout=60)}; " if part == "redis" else ""
            return saved + self._supervisorctl("stop", part)
        return self._servers_ctl(part, "stop")

    def start_server(self, part: str) -> str:
        if self.supervised():
            return self._supervisorctl("start", part)
        return self._servers_ctl(part, "start")

    def _servers_ctl(self, part: str, action: str) -> str:
        cmd = [os.path.join(self.root, "scripts/servers.sh"), "ctl", self.run_dir, part, action]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=self.env)
        return f"servers.sh ctl {part} {action}: rc {res.returncode}"

    def repair(self, part: str) -> str:
        """What a person would do for a part that did not come back by itself."""
        if part in SERVERS and not self.supervised():
            return self.start_server(part)
        cmd = [os.path.join(self.root, "start.sh"), "restart", part]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=self.env)
            tail = (res.stdout + res.stderr).strip().splitlines()[-1:] or [""]
            return f"start.sh restart {part}: rc {res.returncode} ({tail[0][:120]})"
        except subprocess.TimeoutExpired:
            return f"start.sh restart {part}: timed out"

    def start_sh(self, *args: str, timeout: float = 300) -> tuple[int, str]:
        """./start.sh ARGS on this stack: (exit status, stdout and stderr); 124 when it timed out."""
        try:
            res = subprocess.run([os.path.join(self.root, "start.sh"), *args], capture_output=True, text=True,
                                 timeout=timeout, env=self.env)
            return res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return 124, out + f"\n(timed out after {timeout:.0f}s)"

    def status(self) -> tuple[bool, dict[str, str]]:
        """./start.sh status: overall health and each part's state (healthy / unhealthy / stopped)."""
        try:
            res = subprocess.run([os.path.join(self.root, "start.sh"), "status"], capture_output=True, text=True,
                                 timeout=60, env=self.env)
        except subprocess.TimeoutExpired:
            return False, {}
        states = {}
        for line in res.stdout.splitlines():
            words = line.split()
            state = next((w for w in words[1:] if w in STATES), None)
            if words and state and words[0] in self.parts():
                states[words[0]] = state
        return res.returncode == 0, states

    # ------------------------------------------------------------------ RabbitMQ

    def rabbitmqctl(self, *args: str, timeout: float = 60, node: int | None = None) -> str:
        """rabbitmqctl against node 1, or NODE of a cluster."""
        cmd = [os.path.join(self.root, "scripts/servers.sh"), "rabbitmqctl", self.run_dir, *args]
        env = dict(self.env, KVMESH_RMQ_INDEX=str(node)) if node else self.env
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: rc {res.returncode}: {res.stderr.strip()[-300:]}")
        return res.stdout

    def active_consumer(self) -> str | None:
        """The kv-consumer holding the most partition queues as single active consumer (None if unknown)."""
        try:
            consumers = self.rabbitmqctl("list_consumers", "-q", "queue_name", "channel_pid", "active")
            channels = self.rabbitmqctl("list_channels", "-q", "pid", "name")
        except (RuntimeError, subprocess.TimeoutExpired):
            return None
        client_port = {}
        for line in channels.splitlines():
            m = re.match(r"(<\S+>)\s+127\.0\.0\.1:(\d+) ->", line)
            if m:
                client_port[m.group(1)] = int(m.group(2))
        port_owner = self._local_port_owners()
        part_of_pid = {self.find_pid(p): p for p in self.parts() if p.startswith("kv-consumer-")}
        part_of_port = self._proxied_ports()   # a consumer that reaches the broker through a proxy (full mode)
        count: dict[str, int] = {}
        for line in consumers.splitlines():
            words = line.split()
            if len(words) == 3 and re.fullmatch(r".*\.ops\.\d+", words[0]) and words[2] == "true":
                port = client_port.get(words[1], -1)
                part = part_of_port.get(port) or part_of_pid.get(port_owner.get(port))
                if part:
                    count[part] = count.get(part, 0) + 1
        return max(count, key=count.get) if count else None

    @staticmethod
    def _proxied_ports() -> dict[int, str]:
        """local port of a proxy's connection to the broker -> the part it carries (scripts/faults/netproxy.py)."""
        port = os.environ.get("KVMESH_NETPROXY_CONTROL", "")
        if not port:
            return {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                proxies = json.loads(resp.read())
        except (OSError, ValueError):
            return {}
        return {p: name.split(":", 1)[0] for name, st in proxies.items() if name.endswith(":rabbitmq")
                for p in st.get("upstream_ports", [])}

    def _local_port_owners(self) -> dict[int, int]:
        """local port -> pid of the client sockets connected to the broker (ss -tnp)."""
        res = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{self.amqp_port} )"],
                             capture_output=True, text=True, timeout=20)
        owners = {}
        for line in res.stdout.splitlines():
            m = re.search(r"127\.0\.0\.1\]?:(\d+)\s+\S+\s+users:\(\(\"[^\"]*\",pid=(\d+)", line)
            if m:
                owners[int(m.group(1))] = int(m.group(2))
        return owners

    def rabbit_up_node(self) -> int | None:
        """A cluster node that answers on its AMQP port (1 when there is one node)."""
        for i, port in enumerate(self.amqp_ports, 1):
            if port_open(port):
                return i
        return None

    def quorum_queues(self) -> dict[str, dict]:
        """Partition and dead-letter quorum queues: name -> {leader, members, online} (node names), asked of a node
        that answers."""
        out = self.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "type", "leader", "members", "online",
                               node=self.rabbit_up_node() if self.rabbit_nodes > 1 else None)
        queues = {}
        for line in out.splitlines():
            m = re.match(r"(\S+)\s+quorum\s+(\S+)\s+\[(.*?)\]\s+\[(.*?)\]", line)
            if m:
                def names(x: str) -> list[str]:
                    return [n.strip().strip("'") for n in x.split(",") if n.strip()]
                queues[m.group(1)] = {"leader": m.group(2), "members": names(m.group(3)), "online": names(m.group(4))}
        return queues

    def queue_depths(self) -> dict[str, int]:
        out = self.rabbitmqctl("list_queues", "-q", "name", "messages",
                               node=self.rabbit_up_node() if self.rabbit_nodes > 1 else None)
        depths = {}
        for line in out.splitlines():
            words = line.split()
            if len(words) == 2 and words[1].isdigit():
                depths[words[0]] = int(words[1])
        return depths

    def wait_ops_queues_empty(self, timeout_s: float = 30) -> tuple[bool, str]:
        """Waits (bounded) until no operation queue (partition or dead-letter: names with ".ops.") holds a message;
        returns whether that happened and, if not, what was left ("queue: n, ...")."""
        left: dict[str, int] = {}

        def empty() -> bool:
            left.clear()
            left.update({q: n for q, n in self.queue_depths().items() if n and ".ops." in q})
            return not left
        ok = wait_until(empty, timeout_s, 1.0)
        return ok, ", ".join(f"{q}: {n}" for q, n in left.items()) or ("" if ok else "rabbitmqctl did not answer")

    # ------------------------------------------------------------------ PostgreSQL (psql) and Redis (RESP)

    def psql(self, sql: str, timeout: float = 60) -> list[list[str]]:
        env = dict(self.env, PGPASSWORD=self.pg["password"], PGCONNECT_TIMEOUT="5")
        res = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.pg["host"],
                              "-p", self.pg["port"], "-U", self.pg["user"], "-d", self.pg["db"], "-c", sql],
                             capture_output=True, text=True, timeout=timeout, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"psql: {res.stderr.strip()[-300:]}")
        return [line.split("\t") for line in res.stdout.splitlines()]

    def redis(self, *args: str, timeout: float = 5) -> object:
        """One Redis command over a fresh connection (RESP, no client library); returns the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=timeout) as s:
            f = s.makefile("rb")
            if self.redis_password:
                s.sendall(_resp(["AUTH", self.redis_password]))
                _read_reply(f)
            s.sendall(_resp(list(args)))
            return _read_reply(f)

    def redis_ping(self) -> bool:
        try:
            return self.redis("PING", timeout=1) == "PONG"
        except (OSError, RedisError):
            return False

    def redis_scan(self, match: str) -> list[str]:
        keys, cursor = [], "0"
        while True:
            cursor, batch = self.redis("SCAN", cursor, "MATCH", match, "COUNT", "1000")
            keys.extend(batch)
            if cursor == "0":
                return keys


class RedisError(Exception):
    pass


def _resp(args: list[str]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read_reply(f) -> object:
    line = f.readline()
    if not line:
        raise RedisError("connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RedisError(f"unexpected reply {line[:40]!r}")


def wait_until(cond, timeout: float, interval: float = 0.2) -> bool:
    end = time.time() + timeout
    while True:
        try:
            if cond():
                return True
        except Exception:  # a probe that fails while a part is down counts as "not yet"
            pass
        if time.time() >= end:
            return False
        time.sleep(interval)


class _UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def make_connection(self, host):
        path = self.path

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(10)
                self.sock.connect(path)
        return Conn("localhost")
