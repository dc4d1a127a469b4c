"""Each part's own health check, the table of where each part listens, and the waits of `up` and `restart`."""
from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence

from kvstack import proc
from kvstack.stack.paths import RunDir, log_file
from kvstack.stack.settings import LOG, Settings
from kvstack.stack.supervisor import ProgramState, SupervisorApi

GRPC_SERVING = bytes.fromhex("00000000020801")  # grpc.health.v1 reply frame: status SERVING


class Probes:
    """The network checks; tests replace them."""

    def __init__(self, root: str) -> None:
        self.root = root

    def grpc_serving(self, port: str) -> bool:
        """grpc.health.v1.Health/Check over h2c (curl --http2-prior-knowledge) answers SERVING."""
        try:
            res = subprocess.run(
                ["curl", "-s", "--http2-prior-knowledge", "--max-time", "2", "-X", "POST", "-H",
                 "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-",
                 f"http://127.0.0.1:{port}/grpc.health.v1.Health/Check"],
                input=b"\0\0\0\0\0", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.stdout == GRPC_SERVING

    def http_get(self, url: str, timeout: float = 3) -> tuple[int, str]:
        """(status, body) of a GET, no redirects followed; (0, "") when there is no answer."""
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
        try:
            conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""))
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        except (OSError, http.client.HTTPException, ValueError):
            return 0, ""
        finally:
            conn.close()

    def http_code(self, url: str, timeout: float = 3) -> int:
        return self.http_get(url, timeout)[0]

    def servers_up(self, run_dir: str) -> set[str]:
        """The servers `scripts/servers.sh status` finds up."""
        try:
            res = subprocess.run([os.path.join(self.root, "scripts", "servers.sh"), "status", run_dir],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
        except OSError:
            return set()
        return {w[0] for w in (line.split() for line in res.stdout.splitlines()) if w and w[-1] == "up"}


SERVER_PART = re.compile(r"postgres|redis|rabbitmq|rabbitmq-[0-9].*|postgres-standby")


class Health:
    """Health and addresses of one stack's parts."""

    def __init__(self, s: Settings, run: RunDir, probes: Probes) -> None:
        self.s = s
        self.run = run
        self.probes = probes
        self.servers_up: set[str] = set()

    def refresh_servers(self) -> None:
        self.servers_up = self.probes.servers_up(self.run.path)

    def admin_get(self, path: str) -> str | None:
        """Envoy admin GET (curl -f: None for no answer or >= 400), trailing newlines dropped."""
        code, body = self.probes.http_get(f"http://127.0.0.1:{self.s.admin_port}{path}", 2)
        return body.rstrip("\n") if 0 < code < 400 else None

    @staticmethod
    def _index(part: str) -> int:
        return int(part.rsplit("-", 1)[1]) - 1

    def part_healthy(self, part: str) -> bool:
        """PART by its own check (refresh_servers first for the servers)."""
        s = self.s
        if SERVER_PART.fullmatch(part):
            return part in self.servers_up
        try:
            if part.startswith("kv-service-"):
                return self.probes.grpc_serving(s.replica_ports[self._index(part)])
            if part.startswith("kv-consumer-"):
                return self.probes.http_code(f"http://127.0.0.1:{s.consumer_ports[self._index(part)]}/healthz") == 200
        except (IndexError, ValueError):
            return False
        if part == "envoy":
            return self.admin_get("/ready") == "LIVE"
        if part == "nginx":  # the web page: nginx itself, not the API
            return self.probes.http_code(f"http://127.0.0.1:{s.http_port}/") == 200
        if part == "prometheus":
            return self.probes.http_code(f"http://127.0.0.1:{s.prom_port}/-/ready") == 200
        return False

    def part_address(self, part: str) -> str:
        s, sp = self.s, self.run.servers_port
        fixed = {"postgres": f"127.0.0.1:{sp('KVMESH_PG_PORT')}",
                 "postgres-standby": f"127.0.0.1:{sp('KVMESH_PG_STANDBY_PORT')}",
                 "redis": f"127.0.0.1:{sp('KVMESH_REDIS_PORT')}", "rabbitmq": f"127.0.0.1:{sp('KVMESH_AMQP_PORT')}",
                 "envoy": f"127.0.0.1:{s.envoy_port}", "nginx": f"127.0.0.1:{s.http_port}",
                 "prometheus": f"127.0.0.1:{s.prom_port}"}
        if part in fixed:
            return fixed[part]
        m = re.fullmatch(r"rabbitmq-([0-9].*)", part)
        if m:
            addrs = re.sub(r"['\"\\]", "", sp("KVMESH_AMQP_ADDRESSES")).split(",")
            n = int(m.group(1)) if m.group(1).isdigit() else 0
            return addrs[n - 1] if 0 < n <= len(addrs) else ""
        ports = s.replica_ports if part.startswith("kv-service-") else s.consumer_ports
        try:
            return f"127.0.0.1:{ports[self._index(part)]}"
        except (IndexError, ValueError):
            return "127.0.0.1:"

    def envoy_sees_all_replicas(self) -> bool:
        """Envoy's own health check has passed for every replica."""
        clusters = self.admin_get("/clusters")
        if clusters is None:
            return False
        lines = set(clusters.split("\n"))
        return all(f"kv_service::127.0.0.1:{p}::health_flags::healthy" in lines
                   for p in self.s.replica_ports[: self.s.replicas])


def tail_log(run: RunDir, part: str) -> None:
    """The end of PART's log on stderr."""
    f = log_file(run, part)
    if f and os.path.isfile(f) and os.path.getsize(f) > 0:
        print(f"[kvmesh] ---- {part}: last lines of {f} ----", file=sys.stderr)
        for line in proc.tail(f, 30):
            print(line, file=sys.stderr)
    else:
        print(f"[kvmesh] ---- {part}: log {f or 'of ' + part} is empty ----", file=sys.stderr)
    sys.stderr.flush()


def wait_healthy(health: Health, sv: SupervisorApi, parts: Sequence[str], timeout: int, t0: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> bool:
    """Progress lines until every part is healthy; a part supervisord gave up on (FATAL) or the timeout names it with
    the end of its log and returns False."""
    t0 = proc.now_ms() if t0 is None else t0
    end = t0 + timeout * 1000
    pending = list(parts)
    last_report: int | None = None
    while pending:
        still = []
        health.refresh_servers()
        states: dict[str, ProgramState] = sv.states()
        for part in pending:
            st = states.get(part)
            if st and st.state == "RUNNING" and health.part_healthy(part):
                LOG.say(f"  {part} healthy ({proc.elapsed(t0)})")
            elif st and st.state == "FATAL":
                LOG.error(f"{part} keeps exiting at start-up; supervisord gave up on it")
                tail_log(health.run, part)
                return False
            else:
                still.append(part)
        pending = still
        if not pending:
            break
        if proc.now_ms() >= end:
            LOG.error(f"not healthy after {timeout}s: {' '.join(pending)}")
            for part in pending:
                tail_log(health.run, part)
            return False
        if last_report is None or proc.now_ms() - last_report >= 5000:
            if last_report is not None:
                LOG.say(f"  waiting for: {' '.join(pending)} ({proc.elapsed(t0)})")
            last_report = proc.now_ms()
        sleep(0.3)
    return True


def wait_edge(health: Health, timeout: int, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Envoy routes to every replica and nginx answers /healthz 200."""
    t0 = proc.now_ms()
    end = t0 + timeout * 1000
    s = health.s
    while not (health.envoy_sees_all_replicas()
               and health.probes.http_code(f"http://127.0.0.1:{s.http_port}/healthz") == 200):
        if proc.now_ms() >= end:
            LOG.error(f"Envoy does not route to every replica after {timeout}s")
            return False
        sleep(0.3)
    LOG.say(f"  Envoy routes to all {s.replicas} replica(s); /healthz ok ({proc.elapsed(t0)})")
    return True
