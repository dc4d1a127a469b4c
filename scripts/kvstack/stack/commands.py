"""start.sh's commands in native mode (one supervisord per run folder), `__nginx`, and docker mode."""
from __future__ import annotations

import hashlib
import os
import re
import secrets as pysecrets
import shutil
import signal
import string
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from types import FrameType

from kvstack import proc
from kvstack.envfile import read_env_file, write_env_file
from kvstack.stack import install, paths, release, render
from kvstack.stack.health import Health, Probes, wait_edge, wait_healthy
from kvstack.stack.paths import RunDir
from kvstack.stack.settings import LOG, Settings
from kvstack.stack.supervisor import Supervisor, SupervisorApi

STATUS_ROW = "{:<14} {:<8} {:<22} {:<10} {}"


class Interrupted(Exception):
    pass


class Stack:
    """One run folder's stack: settings, files, supervisord and health checks."""

    def __init__(self, s: Settings, environ: MutableMapping[str, str] | None = None, probes: Probes | None = None,
                 supervisor: SupervisorApi | None = None) -> None:
        self.s = s
        self.environ = os.environ if environ is None else environ
        self.run = RunDir(s.run_dir)
        self.sv: SupervisorApi = supervisor or Supervisor(self.run.sv_sock, self.run.sv_pidfile)
        self.health = Health(s, self.run, probes or Probes(s.root))
        self.jars = install.Jars.of(s.root)
        self.release: release.Release | None = None  # what the Java parts run (RUN/release/<id>), set by up/upgrade
        self.java_home = ""

    # ------------------------------------------------------------ state

    def servers_sh(self) -> str:
        return f"{self.s.root}/scripts/servers.sh"

    def load_stack_env(self) -> bool:
        if not os.path.isfile(self.run.stack_env):
            return False
        self.s.apply_stack_env(read_env_file(self.run.stack_env))
        return True

    def write_stack_env(self) -> None:
        write_env_file(self.run.stack_env, "written by start.sh; read by start.sh status/stop/logs/restart and "
                       "scripts/e2e.sh", self.s.stack_env())

    def all_parts(self) -> list[str]:
        return paths.all_parts(self.s, self.run, self.environ)

    # ------------------------------------------------------------ printing

    def print_credentials_location(self) -> None:
        LOG.say(f"credentials of PostgreSQL, Redis, RabbitMQ: {self.run.path}/secrets/credentials.env (mode 0600, "
                "generated for this run folder)")

    def print_metrics_endpoints(self) -> None:
        s = self.s
        print()
        print(f"{'PART':<14} METRICS")
        for i in range(s.replicas):
            if i < len(s.replica_admin_ports) and s.replica_admin_ports[i]:
                print(f"{f'kv-service-{i + 1}':<14} http://127.0.0.1:{s.replica_admin_ports[i]}/metrics")
        for i in range(s.consumers):
            if i < len(s.consumer_ports) and s.consumer_ports[i]:
                print(f"{f'kv-consumer-{i + 1}':<14} http://127.0.0.1:{s.consumer_ports[i]}/metrics")
        print(f"{'envoy':<14} http://127.0.0.1:{s.admin_port}/stats/prometheus")
        if s.prometheus == "1":
            print(f"{'prometheus':<14} http://127.0.0.1:{s.prom_port}/  (page: http://127.0.0.1:{s.http_port}/metrics.html)")

    # ------------------------------------------------------------ stop

    def leftover_pids(self) -> list[int]:
        """supervisord, the Java parts, Envoy and nginx of this run folder not (or no longer) under a supervisord."""
        rd, me, out = self.run.path, os.getpid(), []
        for p in proc.all_pids():
            if p == me or proc.comm(p) not in ("java", "envoy", "nginx", "supervisord"):
                continue
            cmd = " ".join(proc.cmdline(p)) + "  "
            if f"{rd}/" in cmd or f"={rd} " in cmd or proc.cwd(p) == rd:
                out.append(p)
        return out

    def stop_native(self) -> None:
        if self.sv.running():
            p = proc.read_pid(self.run.sv_pidfile)
            # supervisord stops every program, edge first and servers last (reverse priority), then exits
            if not self.sv.shutdown() and p:
                proc.kill([p], signal.SIGTERM)
            if not proc.wait_gone(120, [p]):
                LOG.warn(f"supervisord (pid {p}) did not stop in 120s; killing it")
                if p:
                    proc.kill([p], signal.SIGKILL)
        left = self.leftover_pids()  # what a killed supervisord or a killed nginx master left
        if left:
            LOG.warn(f"leftover kvmesh processes: {''.join(f'{x} ' for x in left)}; stopping them")
            proc.kill(left, signal.SIGTERM)
            proc.wait_until(lambda: not self.leftover_pids(), 5)
            proc.kill(self.leftover_pids(), signal.SIGKILL)
        if os.path.isfile(f"{self.run.path}/servers.state") and subprocess.run(
                [self.servers_sh(), "stop", self.run.path]).returncode != 0:
            LOG.warn("scripts/servers.sh stop reported a problem")
        _rm(self.run.sv_pidfile)
        for x in _listdir(self.run.pids):
            if x.endswith(".pid"):
                _rm(f"{self.run.pids}/{x}")
        if self.run.sv_sock != f"{self.run.path}/supervisor.sock":
            _rm(self.run.sv_sock)

    def cmd_stop(self) -> int:
        self.run.lock()
        self.load_stack_env()
        t0 = proc.now_ms()
        LOG.say(f"stopping kvmesh ({self.run.path})")
        self.stop_native()
        LOG.say(f"stopped in {proc.elapsed(t0)}")
        return 0

    # ------------------------------------------------------------ status, logs, restart

    def cmd_status(self) -> int:
        rd = self.run.path
        if not self.load_stack_env():
            LOG.say(f"stopped: never started from {rd} (./start.sh starts it)")
            return 3
        if not self.sv.running():
            LOG.say(f"stopped: nothing runs from {rd} (./start.sh starts it)")
            return 3
        rc = 0
        self.health.refresh_servers()
        states = self.sv.states()
        print(STATUS_ROW.format("PART", "PID", "ADDRESS", "STATE", "UPTIME"))
        for part in self.all_parts():
            st = states.get(part)
            name = st.state if st else ""
            if name == "RUNNING":
                state = "healthy" if self.health.part_healthy(part) else "unhealthy"
            else:
                state = {"STARTING": "restarting", "BACKOFF": "restarting", "FATAL": "failed"}.get(name, "stopped")
            if state != "healthy":
                rc = 3
            pid = str(st.pid) if st and st.pid else "-"
            uptime = (st.uptime if st else None) or "-"
            print(STATUS_ROW.format(part, pid, self.health.part_address(part), state, uptime))
        self.print_metrics_endpoints()
        print()
        self.print_credentials_location()
        if rc == 0 and self.health.probes.http_code(f"http://127.0.0.1:{self.s.http_port}/healthz") == 200:
            LOG.say(f"healthy: http://127.0.0.1:{self.s.http_port}/")
        else:
            rc = 3
            LOG.say(f"not (fully) healthy: see ./start.sh logs PART (parts restart by themselves; supervisord log: "
                    f"{self.run.logs}/supervisord.log)")
        sys.stdout.flush()
        return rc

    def logs_listing(self) -> list[str]:
        files = sorted("./" + f for f in _listdir(self.run.logs) if f.endswith(".log") and not f.startswith("."))
        files += sorted(f"rabbitmq/{f}" for f in _listdir(f"{self.run.logs}/rabbitmq") if f.endswith(".log")
                        and not f.startswith("."))
        out = ["  " + f.removeprefix("./") for f in files]
        for part in ("nginx-access", "nginx-error"):  # nginx writes its own two under its folder
            f = paths.log_file(self.run, part)
            if os.path.isfile(f):
                out.append(f"  {part:<22} ({f})")
        return out

    def cmd_logs(self, args: list[str]) -> int:
        if not args or not args[0]:
            LOG.say(f"logs in {self.run.logs}:")
            for line in self.logs_listing():
                print(line)
            LOG.say("./start.sh logs PART  follows one (PART: kv-service-1, kv-consumer-1, envoy, envoy-access, nginx, "
                    "nginx-access, nginx-error, postgres, redis, rabbitmq, supervisord ...)")
            return 0
        f = paths.log_file(self.run, args[0])
        if not f or not os.path.isfile(f):
            LOG.die(f"no log for '{args[0]}' (./start.sh logs lists them)")
        sys.stdout.flush()
        if os.isatty(1):
            os.execvp("tail", ["tail", "-n", "100", "-F", f])
        os.execvp("tail", ["tail", "-n", "200", f])

    def require_running(self) -> None:
        if not self.load_stack_env():
            LOG.die("the stack is not running")
        if not self.sv.running():
            LOG.die(f"the stack is not running (no supervisord for {self.run.path})")

    def cmd_restart(self, args: list[str]) -> int:
        part = args[0] if args else ""
        self.run.lock()
        self.require_running()
        parts = self.all_parts()
        if part not in parts:
            LOG.die(f"usage: ./start.sh restart PART (one of: {''.join(p + ' ' for p in parts)})")
        LOG.say(f"restarting {part}")
        t0 = proc.now_ms()
        # returns once the new process has lived startsecs: only the new process can answer the checks below
        self.sv.restart(part)
        return 0 if wait_healthy(self.health, self.sv, [part], self.s.timeout_secs, t0) else 1

    # ------------------------------------------------------------ rolling upgrade

    def cmd_upgrade(self, args: list[str]) -> int:
        """Builds what changed, then restarts the consumers and then the replicas one at a time on the new release,
        each drained (a replica turns NOT_SERVING and keeps serving until Envoy's health check routes around it) and
        healthy again (a replica: in Envoy's eyes too) before the next; the others keep serving on the old one."""
        force = args == ["--force"]
        if args and not force:
            LOG.die("usage: ./start.sh upgrade [--force]   (--force: restart every replica and consumer one by one "
                    "even when the build did not change)")
        s, run = self.s, self.run
        run.lock()
        self.require_running()
        self.java_home = install.find_java(s.root)
        envoy_bin = install.find_envoy(s)
        parts = paths.java_parts(s)
        if not wait_edge(self.health, 10):
            LOG.die("not every replica is healthy in Envoy: a rolling restart would leave none serving; "
                    "./start.sh status shows which, ./start.sh restart PART brings one back")
        old = release.current(run.path)
        built = install.build_jars(s, run)
        self.release = new = release.snapshot(self.jars, run.path)
        if old and new.id == old.id and not force:
            LOG.say(f"nothing to upgrade: the build is release {new.id}, which every part runs already"
                    f"{' (rebuilt, same contents)' if built else ''}; --force restarts them one by one anyway")
            return 0
        LOG.say(f"rolling upgrade: release {old.id if old else '(the source tree)'} -> {new.id}, {len(parts)} parts "
                "one at a time (consumers, then replicas)")
        if s.replicas < 2:
            LOG.warn("one replica: requests fail while it restarts (KVMESH_REPLICAS=2 or more for no failed request)")
        self.render_configs(envoy_bin)  # envoy.yaml names the new release's API descriptor (Envoy reads it at start)
        self.render_supervisor_conf(envoy_bin)
        t_all = proc.now_ms()
        consumers = [p for p in parts if p.startswith("kv-consumer-")]
        for part in [*consumers, *(p for p in parts if p not in consumers)]:
            t0 = proc.now_ms()
            LOG.say(f"  {part}: stopping (drained), starting on release {new.id}")
            ok = self.sv.replace(part) and wait_healthy(self.health, self.sv, [part], s.timeout_secs, t0)
            if ok and part.startswith("kv-service-"):
                ok = wait_edge(self.health, s.timeout_secs)
            if not ok:
                LOG.error(f"the upgrade stopped at {part}, which is not healthy on release {new.id}; the parts before "
                          f"it run {new.id}, the ones after it {old.id if old else 'the old build'}. Fix the build and "
                          "run ./start.sh upgrade again")
                return 1
        release.set_current(run.path, new)
        LOG.say(f"upgrade done in {proc.elapsed(t_all)}: every replica and consumer runs release {new.id}")
        if old and _file_digest(old.descriptor) != _file_digest(new.descriptor):
            LOG.warn("the API descriptor changed: Envoy transcodes with the old one until ./start.sh restart envoy "
                     "(that restart drops the connections in flight)")
        return 0

    # ------------------------------------------------------------ auth

    def kvctl(self, *args: str) -> list[str]:
        return [f"{self.java_home}/bin/java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar", self.jars.cli,
                *args]

    def prepare_auth(self) -> None:
        """Auth on: one ES256 signing key per run folder (secrets/, 0700), kept across restarts; an admin token (every
        key and permission, 30 days) minted at each start into secrets/admin.token."""
        if self.s.auth != "on":
            return
        sec = self.run.secrets
        os.makedirs(sec, exist_ok=True)
        os.chmod(sec, 0o700)
        if not os.path.isfile(f"{sec}/auth-signing-key.jwk"):
            LOG.say(f"auth on: making the stack's token signing key ({sec})")
            if subprocess.run(self.kvctl("token", "keygen", "--dir", sec), stdout=subprocess.DEVNULL).returncode:
                LOG.die("could not make the signing key")
        tmp = f"{sec}/admin.token.tmp"
        old = os.umask(0o077)
        try:
            with open(tmp, "w", encoding="utf-8") as out:
                rc = subprocess.run(self.kvctl("token", "mint", "--key", f"{sec}/auth-signing-key.jwk", "--prefix", "",
                                               "--permissions", "all", "--ttl", "30d", "--subject", "admin"),
                                    stdout=out).returncode
        finally:
            os.umask(old)
        if rc:
            LOG.die("could not mint the admin token")
        os.replace(tmp, f"{sec}/admin.token")

    def cmd_token(self, args: list[str]) -> int:
        self.load_stack_env()
        key = f"{self.run.secrets}/auth-signing-key.jwk"
        if not os.path.isfile(key):
            LOG.die(f"no signing key in {self.run.secrets}: start the stack with auth on first "
                    "(KVMESH_AUTH=on ./start.sh)")
        self.java_home = install.find_java(self.s.root)
        args = args or ["--prefix", "", "--permissions", "all"]
        cmd = self.kvctl("token", "mint", "--key", key, *args)
        sys.stdout.flush()
        os.execv(cmd[0], cmd)

    # ------------------------------------------------------------ PostgreSQL switchover

    def cmd_pg_switchover(self, args: list[str]) -> int:
        self.run.lock()
        self.require_running()
        if not self.run.servers_port("KVMESH_PG_STANDBY_PORT"):
            LOG.die("no PostgreSQL standby in this stack (start it with KVMESH_PG_STANDBY=1)")
        t0 = proc.now_ms()
        res = subprocess.run([self.servers_sh(), "pg-sync-state", self.run.path], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        sync = "\n".join(f"{f[1] if len(f) > 1 else ''} {f[2] if len(f) > 2 else ''}"
                         for f in (line.split("|") for line in res.stdout.splitlines()) if f[0] == "kvmesh_standby")
        if sync != "streaming sync" and (args[0] if args else "") != "--force":
            LOG.die(f"the standby is not a streaming synchronous standby of the primary ({sync or 'not connected'}): "
                    "a promotion could lose commits; --force does it anyway")
        LOG.say(f"switchover: standby in sync ({sync}); stopping the primary (fast shutdown)")
        self.sv.stop("postgres")
        if subprocess.run([self.servers_sh(), "pg-promote", self.run.path]).returncode != 0:
            LOG.die(f"promotion failed; the primary is stopped: ./start.sh restart postgres brings it back (delete "
                    f"{self.run.path}/postgres/FENCED first if present)")
        LOG.say(f"switchover done in {proc.elapsed(t0)}: the primary is postgres-standby on "
                f"127.0.0.1:{self.run.servers_port('KVMESH_PG_STANDBY_PORT')}")
        LOG.say("the old primary (part postgres) stays stopped and fenced, and the new one runs without a standby: "
                "making the old")
        LOG.say("primary a standby again is manual (README: A PostgreSQL standby and a switchover)")
        return 0

    # ------------------------------------------------------------ up

    def check_ports_free(self, ports: list[str]) -> None:
        busy = [p for p in ports if proc.port_open(p)]
        if busy:
            LOG.die(f"port(s) {' '.join(busy)} on 127.0.0.1 already in use; set KVMESH_HTTP_PORT / KVMESH_ENVOY_PORT / "
                    "KVMESH_ENVOY_ADMIN_PORT / KVMESH_REPLICA_BASE_PORT / KVMESH_CONSUMER_HTTP_PORTS (or .env)")

    def render_configs(self, envoy_bin: str) -> None:
        run, s = self.run, self.s
        os.makedirs(f"{run.path}/nginx/logs", exist_ok=True)
        os.makedirs(f"{run.path}/nginx/tmp", exist_ok=True)
        descriptor = self.release.descriptor if self.release else self.jars.descriptor
        envoy_env, nginx_env = render.edge_environ(s, run, descriptor, self.environ)
        try:
            render.render_template(f"{s.root}/envoy/envoy.yaml", f"{run.conf}/envoy.yaml", envoy_env)
            render.render_template(f"{s.root}/nginx/nginx.conf", f"{run.conf}/nginx.conf", nginx_env)
        except render.RenderError as e:
            print(e, file=sys.stderr)
            raise SystemExit(1) from e
        if s.prometheus == "1":
            self.render_prometheus()
        if not _run_logged([envoy_bin, "--mode", "validate", "-c", f"{run.conf}/envoy.yaml"],
                           f"{run.logs}/envoy-validate.log", 20):
            LOG.die(f"envoy rejects {run.conf}/envoy.yaml")
        if not _run_logged(["nginx", "-t", "-p", f"{run.path}/nginx", "-c", f"{run.conf}/nginx.conf"],
                           f"{run.logs}/nginx-validate.log", None):
            LOG.die(f"nginx rejects {run.conf}/nginx.conf")

    def render_prometheus(self) -> None:
        run = self.run
        tmp = f"{run.conf}/prometheus.yml.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(render.prometheus_yml_text(self.s, run))
        os.replace(tmp, f"{run.conf}/prometheus.yml")
        os.makedirs(f"{run.path}/prometheus", exist_ok=True)
        if proc_which("promtool") and not _run_logged(["promtool", "check", "config", f"{run.conf}/prometheus.yml"],
                                                      f"{run.logs}/prometheus-validate.log", None):
            LOG.die(f"promtool rejects {run.conf}/prometheus.yml")

    def render_supervisor_conf(self, envoy_bin: str) -> None:
        rel = self.release
        bins = render.Binaries(self.java_home, envoy_bin, rel.service if rel else self.jars.service,
                               rel.consumer if rel else self.jars.consumer)
        try:
            progs = render.supervisor_programs(self.s, self.run, bins, paths.rabbitmq_parts(self.run, self.environ),
                                               self.run.servers_env(), self.environ)
        except render.RenderError as e:
            LOG.die(str(e))
        render.write_private(self.run.sv_conf, render.supervisor_conf_text(self.run, progs))

    def start_supervisor(self) -> bool:
        """supervisord daemonizes; it inherits no fd of ours (the lock, a caller's pipe)."""
        run = self.run
        _rm(run.sv_pidfile)
        out_log = f"{run.logs}/supervisord.out"
        with open(out_log, "a", encoding="utf-8") as out:
            rc = subprocess.run(["supervisord", "-c", run.sv_conf], cwd=run.path, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, close_fds=True, env=dict(self.environ)).returncode
        if rc != 0:
            _print_tail(out_log, 20)
            return False
        if proc.wait_until(self.sv.running, 10):
            return True
        for f in (out_log, f"{run.logs}/supervisord.log"):
            if os.path.exists(f):
                print(f"==> {f} <==", file=sys.stderr)
                _print_tail(f, 20)
        return False

    def cmd_up(self) -> int:
        s, run = self.s, self.run
        run.lock()
        if os.path.isfile(run.stack_env) and self.sv.running():
            self.load_stack_env()
            LOG.say(f"kvmesh is already running from {run.path} (supervisord pid {proc.read_pid(run.sv_pidfile)}); "
                    "starting nothing.")
            LOG.say("  ./start.sh status | ./start.sh stop")
            return 0
        if self.leftover_pids():
            LOG.die(f"processes of an earlier stack in {run.path} are still running without their supervisord: "
                    "./start.sh stop first")
        t0 = proc.now_ms()
        LOG.say(f"native mode; run folder {run.path}")
        if not s.consumer_ports:
            s.consumer_ports = _free_ports(s.consumers, "no free ports for the consumers")
        if not s.replica_admin_ports:
            s.replica_admin_ports = _free_ports(s.replicas, "no free ports for the replicas' admin endpoints")
        if s.prometheus == "1" and not s.prom_port:
            s.prom_port = _free_ports(1, "no free port for Prometheus")[0]
        self.check_ports_free(s.all_ports())
        envoy_bin, self.java_home = install.install_native(s, run)
        self.release = release.snapshot(self.jars, run.path)
        release.set_current(run.path, self.release)
        paths.read_partitions(run, self.environ)
        self.prepare_auth()
        self.render_configs(envoy_bin)
        self.write_stack_env()
        old = _trap(self._interrupted)
        try:
            return self._up_supervised(t0, envoy_bin)
        except Interrupted:
            print("[kvmesh] interrupted; stopping what was started", file=sys.stderr, flush=True)
            _trap(None, old)
            self.stop_native()
            return 130
        finally:
            _trap(None, old)

    @staticmethod
    def _interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()

    def _up_supervised(self, t0: int, envoy_bin: str) -> int:
        s, run = self.s, self.run
        LOG.say("preparing PostgreSQL, Redis, RabbitMQ (scripts/servers.sh prepare)")
        if subprocess.run([self.servers_sh(), "prepare", run.path], env=dict(self.environ)).returncode != 0:
            LOG.die(f"could not prepare the servers' folders (logs under {run.logs})")
        self.render_supervisor_conf(envoy_bin)
        LOG.say(f"starting supervisord: PostgreSQL, Redis, RabbitMQ, {s.replicas} kv-service replica(s), {s.consumers} "
                "kv-consumer(s), Envoy, nginx")
        if not self.start_supervisor():
            self.stop_native()
            LOG.die(f"supervisord did not start (log: {run.logs}/supervisord.log)")
        LOG.say(f"waiting for every part to be healthy (up to {s.timeout}s)")
        if not (wait_healthy(self.health, self.sv, self.all_parts(), s.timeout_secs)
                and wait_edge(self.health, s.timeout_secs)):
            LOG.say("start-up failed; stopping what was started")
            self.stop_native()
            return 1
        if paths.rabbitmq_nodes(run, self.environ) > 1 and subprocess.run(
                [self.servers_sh(), "cluster-grow", run.path]).returncode != 0:
            LOG.warn(f"not every quorum queue is on every RabbitMQ node (scripts/servers.sh cluster-grow {run.path})")
        LOG.say(f"kvmesh is up in {proc.elapsed(t0)}")
        print_urls(s, run.secrets, run.logs)
        self.print_credentials_location()
        return 0


# ---------------------------------------------------------------- shared

def print_urls(s: Settings, secrets_dir: str | None, logs: str | None) -> None:
    if s.auth == "on":
        print("[kvmesh] auth on: every API call needs 'Authorization: Bearer <token>'. A token for everything "
              "(30 days):")
        print(f"[kvmesh]   {secrets_dir or './.run/secrets'}/admin.token  (kvctl: KVMESH_TOKEN_FILE=that file; the web "
              "page asks for it)")
        print("[kvmesh]   scoped ones: ./start.sh token --prefix app1/ --permissions read,write --ttl 24h")
    p = s.http_port
    prom = f"; Prometheus http://127.0.0.1:{s.prom_port}/" if s.prometheus == "1" else ""
    print(f"""[kvmesh]   web + REST API  http://127.0.0.1:{p}/     (nginx; /kv, /api, /healthz)
[kvmesh]   Envoy           http://127.0.0.1:{s.envoy_port}/     (REST and native gRPC, h2c)
[kvmesh]   Envoy admin     http://127.0.0.1:{s.admin_port}/
[kvmesh]   metrics page    http://127.0.0.1:{p}/metrics.html   (live with KVMESH_PROMETHEUS=1{prom})
[kvmesh]   logs            {logs or './.run/logs'}   (./start.sh logs [part])
[kvmesh] try:
  curl -X PUT -d '{{"key":"hello","value":"world"}}' http://127.0.0.1:{p}/api
  curl 'http://127.0.0.1:{p}/api?key=hello'
  curl -X PUT -d '{{"data":{{"key":"hello","value":"again"}}}}' http://127.0.0.1:{p}/kv
  curl 'http://127.0.0.1:{p}/kv/all?prefix=he'""", flush=True)


def proc_pgrp(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def group_members(pgid: int, name: str) -> list[int]:
    """`pgrep -g PGID -x NAME`."""
    return [p for p in proc.all_pids() if proc_pgrp(p) == pgid and proc.comm(p) == name]


def run_nginx(run_dir: str) -> None:
    """`start.sh __nginx RUN_DIR`, supervisord's command for nginx. The workers of a killed master live on, orphaned,
    in its process group (each supervisord program is a group): that group is ended before nginx starts again. As root
    the workers run as root too (nobody cannot read nginx/html below a 0700 folder). Becomes nginx (same pid)."""
    old = proc.read_pid(f"{run_dir}/nginx/nginx.pid")
    if old and not proc.pid_alive(old):
        members = group_members(old, "nginx")
        if members:
            print(f"[kvmesh] nginx: ending the workers of the killed master {old}: {''.join(f'{m} ' for m in members)}",
                  flush=True)
            proc.kill(members, signal.SIGTERM)
            proc.wait_until(lambda: not group_members(old, "nginx"), 3)
            try:
                os.killpg(old, signal.SIGKILL)
            except OSError:
                pass
    user = " user root root;" if os.geteuid() == 0 else ""
    with open(f"{run_dir}/pids/nginx.pid", "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    sys.stdout.flush()
    os.execvp("nginx", ["nginx", "-p", f"{run_dir}/nginx", "-c", f"{run_dir}/conf/nginx.conf", "-g",
                        f"daemon off;{user}"])


COMPOSE_SECRETS = (  # one a line: StackConfigTest takes a name followed by a string on one line for a default
    "KVMESH_PG_SUPERUSER_PASSWORD",
    "KVMESH_PG_PASSWORD",
    "KVMESH_REDIS_PASSWORD",
    "KVMESH_AMQP_PASSWORD",
)


def ensure_compose_secrets(root: str, environ: MutableMapping[str, str]) -> None:
    """Each store password in ./.env, generated once (0600) if neither the environment nor .env has it."""
    f = f"{root}/.env"
    if not os.path.exists(f):
        os.close(os.open(f, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(f, 0o600)
    added = []
    for name in COMPOSE_SECRETS:
        if environ.get(name):
            continue
        value = "".join(pysecrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        with open(f, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
        # an empty line (.env.example has one) would hide the new one
        lines = [x for x in text.splitlines(keepends=True) if not re.match(rf"(export )?{name}=", x)]
        text = "".join(lines)
        if text and not text.endswith("\n"):
            text += "\n"
        text += f"{name}={value}\n"
        with open(f, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        environ[name] = value
        added.append(name)
    if added:
        LOG.say(f"generated {' '.join(added)} into {f} (mode 0600); compose's volumes keep the first ones they were "
                "started with")


def help_text(root: str) -> str:
    """start.sh's header comment (line 2 up to `set -euo`), without the comment marks."""
    with open(f"{root}/start.sh", encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    for line in lines[1:]:
        if line.startswith("set -euo"):
            break
        out.append(re.sub(r"^# ?", "", line))
    return "".join(x + "\n" for x in out)


# ---------------------------------------------------------------- small helpers

def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []


def _rm(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _print_tail(path: str, n: int) -> None:
    for line in proc.tail(path, n):
        print(line, file=sys.stderr)
    sys.stderr.flush()


def _run_logged(cmd: list[str], log: str, tail_lines: int | None) -> bool:
    with open(log, "w", encoding="utf-8") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
        except OSError as e:
            out.write(f"{e}\n")
            rc = 127
    if rc != 0:
        if tail_lines is None:
            with open(log, encoding="utf-8", errors="replace") as f:
                sys.stderr.write(f.read())
            sys.stderr.flush()
        else:
            _print_tail(log, tail_lines)
    return rc == 0


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""


def _free_ports(n: int, error: str) -> list[str]:
    try:
        return [str(p) for p in proc.free_ports(n)]
    except OSError:
        LOG.die(error)


def proc_which(name: str) -> bool:
    return shutil.which(name) is not None


SignalHandler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _trap(handler: Callable[[int, FrameType | None], None] | None,
          restore: dict[int, SignalHandler] | None = None) -> dict[int, SignalHandler]:
    """Installs handler for SIGINT and SIGTERM (or restores the earlier ones); returns the earlier ones."""
    old: dict[int, SignalHandler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.getsignal(sig)
        if handler is not None:
            signal.signal(sig, handler)
        elif restore is not None:
            prev = restore[sig]
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
    return old
