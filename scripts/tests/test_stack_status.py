from __future__ import annotations

import os
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

import pytest
from stack_fakes import ROOT, FakeProbes, FakeSupervisor, make_settings

from kvstack import proc
from kvstack.stack import commands, health, supervisor
from kvstack.stack.commands import Stack
from kvstack.stack.supervisor import ProgramState

PARTS = ["postgres", "redis", "rabbitmq", "kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2", "envoy",
         "nginx"]


def running(pid: int = 100, uptime: str = "0:01:05") -> ProgramState:
    return ProgramState("RUNNING", pid, uptime)


def healthy_probes(http: str = "8088", admin: str = "9901") -> FakeProbes:
    p = FakeProbes()
    p.up = {"postgres", "redis", "rabbitmq"}
    p.grpc = {"9091", "9092"}
    p.codes = {"http://127.0.0.1:7001/healthz": 200, "http://127.0.0.1:7002/healthz": 200,
               f"http://127.0.0.1:{admin}/ready": 200, f"http://127.0.0.1:{http}/": 200,
               f"http://127.0.0.1:{http}/healthz": 200, f"http://127.0.0.1:{admin}/clusters": 200}
    p.bodies = {f"http://127.0.0.1:{admin}/ready": "LIVE\n",
                f"http://127.0.0.1:{admin}/clusters": "kv_service::127.0.0.1:9091::health_flags::healthy\n"
                "kv_service::127.0.0.1:9092::health_flags::healthy\n"}
    return p


def make_stack(tmp_path: Path, states: dict[str, ProgramState] | None = None, probes: FakeProbes | None = None,
               sv_running: bool = True, **env: str) -> Stack:
    s = make_settings(ROOT, str(tmp_path / "run"), KVMESH_CONSUMER_HTTP_PORTS="7001,7002",
                      KVMESH_REPLICA_ADMIN_PORTS="8001,8002", **env)
    st = Stack(s, environ=dict(env), probes=probes or healthy_probes(),
               supervisor=FakeSupervisor(states if states is not None else {p: running() for p in PARTS}, sv_running))
    Path(st.run.servers_env_file).write_text(
        "export KVMESH_PG_PORT=5432\nexport KVMESH_REDIS_PORT=6379\nexport KVMESH_AMQP_PORT=5672\n"
        "export KVMESH_RABBIT_NODE=kvmesh-run-abc@localhost\n", encoding="utf-8")
    st.write_stack_env()
    return st


def test_status_all_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path)
    assert st.cmd_status() == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "PART           PID      ADDRESS                STATE      UPTIME"
    assert out[1] == "postgres       100      127.0.0.1:5432         healthy    0:01:05"
    assert out[4] == "kv-service-1   100      127.0.0.1:9091         healthy    0:01:05"
    assert out[9] == "nginx          100      127.0.0.1:8088         healthy    0:01:05"
    assert out[10:17] == ["", "PART           METRICS", "kv-service-1   http://127.0.0.1:8001/metrics",
                          "kv-service-2   http://127.0.0.1:8002/metrics", "kv-consumer-1  http://127.0.0.1:7001/metrics",
                          "kv-consumer-2  http://127.0.0.1:7002/metrics",
                          "envoy          http://127.0.0.1:9901/stats/prometheus"]
    assert out[-2] == (f"[kvmesh] credentials of PostgreSQL, Redis, RabbitMQ: {st.run.path}/secrets/credentials.env "
                       "(mode 0600, generated for this run folder)")
    assert out[-1] == "[kvmesh] healthy: http://127.0.0.1:8088/"


@pytest.mark.parametrize("state, healthy, want", [
    (running(), False, "unhealthy"), (ProgramState("STARTING", None, None), True, "restarting"),
    (ProgramState("BACKOFF", None, None), True, "restarting"), (ProgramState("FATAL", None, None), True, "failed"),
    (ProgramState("STOPPED", None, None), True, "stopped"), (None, True, "stopped"),
])
def test_status_states_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], state: ProgramState | None,
                                     healthy: bool, want: str) -> None:
    states = {p: running() for p in PARTS}
    if state is None:
        del states["kv-consumer-2"]
    else:
        states["kv-consumer-2"] = state
    probes = healthy_probes()
    if not healthy:
        del probes.codes["http://127.0.0.1:7002/healthz"]
    st = make_stack(tmp_path, states, probes)
    assert st.cmd_status() == 3
    out = capsys.readouterr().out.splitlines()
    row = next(x for x in out if x.startswith("kv-consumer-2 "))
    pid = "100" if state and state.pid else "-"
    assert row.split() == ["kv-consumer-2", pid, "127.0.0.1:7002", want, "0:01:05" if state and state.uptime else "-"]
    assert out[-1].startswith("[kvmesh] not (fully) healthy: see ./start.sh logs PART (parts restart by themselves; "
                              f"supervisord log: {st.run.logs}/supervisord.log)")


def test_status_healthz_failing_is_not_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probes = healthy_probes()
    del probes.codes["http://127.0.0.1:8088/healthz"]
    assert make_stack(tmp_path, probes=probes).cmd_status() == 3


def test_status_when_stopped_or_never_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path, sv_running=False)
    assert st.cmd_status() == 3
    assert capsys.readouterr().out == f"[kvmesh] stopped: nothing runs from {st.run.path} (./start.sh starts it)\n"
    os.unlink(st.run.stack_env)
    assert st.cmd_status() == 3
    assert capsys.readouterr().out == f"[kvmesh] stopped: never started from {st.run.path} (./start.sh starts it)\n"


def test_health_rules_per_part(tmp_path: Path) -> None:
    probes = healthy_probes()
    st = make_stack(tmp_path, probes=probes, KVMESH_PROMETHEUS="1", KVMESH_PROMETHEUS_PORT="9090")
    h = st.health
    h.refresh_servers()
    assert all(h.part_healthy(p) for p in PARTS)
    assert not h.part_healthy("prometheus")
    probes.codes["http://127.0.0.1:9090/-/ready"] = 200
    assert h.part_healthy("prometheus")
    probes.bodies["http://127.0.0.1:9901/ready"] = "PRE_INITIALIZING"
    assert not h.part_healthy("envoy")
    probes.grpc.discard("9092")
    assert not h.part_healthy("kv-service-2") and h.part_healthy("kv-service-1")
    probes.up.discard("redis")
    h.refresh_servers()
    assert not h.part_healthy("redis") and not h.part_healthy("postgres-standby")
    assert h.envoy_sees_all_replicas()
    probes.bodies["http://127.0.0.1:9901/clusters"] = "kv_service::127.0.0.1:9091::health_flags::healthy\n"
    assert not h.envoy_sees_all_replicas()
    probes.codes["http://127.0.0.1:9901/clusters"] = 503
    assert h.admin_get("/clusters") is None


def test_addresses_of_servers_and_rabbit_nodes(tmp_path: Path) -> None:
    st = make_stack(tmp_path)
    Path(st.run.servers_env_file).write_text(
        "export KVMESH_PG_STANDBY_PORT=5433\nexport KVMESH_AMQP_ADDRESSES=127.0.0.1:1\\,127.0.0.1:2\\,127.0.0.1:3\n"
        "export KVMESH_RABBITMQ_NODES=3\n", encoding="utf-8")
    assert st.health.part_address("postgres-standby") == "127.0.0.1:5433"
    assert st.health.part_address("rabbitmq-2") == "127.0.0.1:2"
    assert st.health.part_address("kv-consumer-2") == "127.0.0.1:7002"
    assert st.all_parts()[:6] == ["postgres", "postgres-standby", "redis", "rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]


def test_grpc_rule_is_the_serving_frame() -> None:
    assert health.GRPC_SERVING == b"\x00\x00\x00\x00\x02\x08\x01"


def test_restart_errors_and_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path)
    for args in (["nosuch"], [], [""]):
        with pytest.raises(SystemExit) as e:
            st.cmd_restart(args)
        assert e.value.code == 1
        assert capsys.readouterr().err == (
            "[kvmesh] ERROR: usage: ./start.sh restart PART (one of: postgres redis rabbitmq kv-service-1 "
            "kv-service-2 kv-consumer-1 kv-consumer-2 envoy nginx )\n")
    assert st.cmd_restart(["kv-service-2"]) == 0
    assert st.sv.calls == [("restart", "kv-service-2")]  # type: ignore[attr-defined]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[kvmesh] restarting kv-service-2" and out[1].startswith("[kvmesh]   kv-service-2 healthy (")


def test_restart_of_a_stopped_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path, sv_running=False)
    with pytest.raises(SystemExit) as e:
        st.cmd_restart(["nginx"])
    assert e.value.code == 1
    assert capsys.readouterr().err == f"[kvmesh] ERROR: the stack is not running (no supervisord for {st.run.path})\n"
    os.unlink(st.run.stack_env)
    with pytest.raises(SystemExit):
        st.cmd_restart(["nginx"])
    assert capsys.readouterr().err == "[kvmesh] ERROR: the stack is not running\n"


def test_wait_healthy_fatal_names_the_part_with_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path, {"envoy": ProgramState("FATAL", None, None)})
    Path(st.run.logs, "envoy.log").write_text("boom\n", encoding="utf-8")
    assert not health.wait_healthy(st.health, st.sv, ["envoy"], 5, sleep=lambda _: None)
    err = capsys.readouterr().err
    assert err == (f"[kvmesh] ERROR: envoy keeps exiting at start-up; supervisord gave up on it\n"
                   f"[kvmesh] ---- envoy: last lines of {st.run.logs}/envoy.log ----\nboom\n")


def test_wait_healthy_timeout_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_stack(tmp_path, {"nginx": ProgramState("STARTING", None, None), "redis": running()})
    clock = [1_000_000]
    monkeypatch.setattr(proc, "now_ms", lambda: clock[0])

    def sleep(_: float) -> None:
        clock[0] += 3000

    assert not health.wait_healthy(st.health, st.sv, ["nginx", "redis"], 10, sleep=sleep)
    cap = capsys.readouterr()
    assert cap.out == "[kvmesh]   redis healthy (0.0s)\n[kvmesh]   waiting for: nginx (6.0s)\n"
    assert cap.err == (f"[kvmesh] ERROR: not healthy after 10s: nginx\n"
                       f"[kvmesh] ---- nginx: log {st.run.logs}/nginx.log is empty ----\n")


def test_wait_edge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path)
    assert health.wait_edge(st.health, 1, sleep=lambda _: None)
    assert capsys.readouterr().out.startswith("[kvmesh]   Envoy routes to all 2 replica(s); /healthz ok (")
    st.health.probes.codes.pop("http://127.0.0.1:8088/healthz")  # type: ignore[attr-defined]
    assert not health.wait_edge(st.health, 0, sleep=lambda _: None)
    assert capsys.readouterr().err == "[kvmesh] ERROR: Envoy does not route to every replica after 0s\n"


def test_uptime_format() -> None:
    assert [supervisor.format_uptime(x) for x in (0, 65, 3600, 36061, 90061, -5)] == [
        "0:00:00", "0:01:05", "1:00:00", "10:01:01", "25:01:01", "0:00:00"]


# ---------------------------------------------------------------- the XML-RPC client against a fake supervisord

class _Handler(SimpleXMLRPCRequestHandler):
    disable_nagle_algorithm = False  # a unix socket has no TCP options

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.UnixStreamServer, SimpleXMLRPCDispatcher):
    def __init__(self, path: str) -> None:
        SimpleXMLRPCDispatcher.__init__(self, allow_none=True, encoding=None)
        self.logRequests = False
        socketserver.UnixStreamServer.__init__(self, path, _Handler)


def test_supervisor_client_over_a_unix_socket(tmp_path: Path) -> None:
    sock = str(tmp_path / "s.sock")
    server = _Server(sock)
    calls: list[str] = []
    now = int(time.time())

    class Api:
        def getPID(self) -> int:  # noqa: N802
            return os.getpid()

        def getAllProcessInfo(self) -> list[dict[str, object]]:  # noqa: N802
            return [{"name": "nginx", "group": "nginx", "statename": "RUNNING", "pid": 42, "start": now - 3725,
                     "now": now},
                    {"name": "envoy", "group": "envoy", "statename": "BACKOFF", "pid": 0, "start": 0, "now": now}]

        def stopProcess(self, name: str, wait: bool) -> bool:  # noqa: N802
            calls.append(f"stop {name}")
            return True

        def startProcess(self, name: str, wait: bool) -> bool:  # noqa: N802
            calls.append(f"start {name}")
            return True

        def shutdown(self) -> bool:
            calls.append("shutdown")
            return True

    server.funcs.update({f"supervisor.{n}": getattr(Api(), n) for n in dir(Api) if not n.startswith("_")})
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        pidfile = tmp_path / "sv.pid"
        pidfile.write_text(f"{os.getpid()}\n")
        sv = supervisor.Supervisor(sock, str(pidfile))
        assert sv.running()
        assert sv.states() == {"nginx": ProgramState("RUNNING", 42, "1:02:05"),
                               "envoy": ProgramState("BACKOFF", None, None)}
        sv.restart("kv-service-1")
        assert sv.shutdown()
        assert calls == ["stop kv-service-1", "start kv-service-1", "shutdown"]
        pidfile.write_text("1\n")
        assert not sv.running()
        assert not supervisor.Supervisor(str(tmp_path / "none.sock"), str(pidfile)).running()
        assert supervisor.Supervisor(str(tmp_path / "none.sock"), str(pidfile)).states() == {}
    finally:
        server.shutdown()
        server.server_close()


def test_group_members_finds_a_process_group(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "5"], start_new_session=True)
    try:
        assert commands.proc_pgrp(child.pid) == child.pid
        assert commands.group_members(child.pid, "sleep") == [child.pid]
        assert commands.group_members(child.pid, "nginx") == []
    finally:
        child.kill()
        child.wait()
