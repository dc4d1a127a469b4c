from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stack_fakes import ROOT, make_settings

from kvstack import envfile
from kvstack.stack import cli, commands, paths
from kvstack.stack.paths import RunDir

sys.path.insert(0, os.path.join(ROOT, "scripts", "faults"))


def run_dir(tmp_path: Path, servers_env: str = "") -> RunDir:
    run = RunDir(str(tmp_path / "run"))
    if servers_env:
        Path(run.servers_env_file).write_text(servers_env, encoding="utf-8")
    return run


@pytest.mark.parametrize("servers_env, environ, want", [
    ("", {}, ["postgres", "redis", "rabbitmq"]),
    ("", {"KVMESH_RABBITMQ_NODES": "3"}, ["postgres", "redis", "rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]),
    ("export KVMESH_RABBITMQ_NODES=3\n", {"KVMESH_RABBITMQ_NODES": "1"},
     ["postgres", "redis", "rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]),  # the prepared folder keeps its cluster
    ("export KVMESH_RABBITMQ_NODES=1\n", {"KVMESH_RABBITMQ_NODES": "3"}, ["postgres", "redis", "rabbitmq"]),
    ("export KVMESH_PG_STANDBY_PORT=5433\n", {}, ["postgres", "postgres-standby", "redis", "rabbitmq"]),
])
def test_server_parts(tmp_path: Path, servers_env: str, environ: dict[str, str], want: list[str]) -> None:
    assert paths.server_parts(run_dir(tmp_path, servers_env), environ) == want


def test_rabbitmq_nodes_must_be_1_to_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        paths.rabbitmq_nodes(run_dir(tmp_path), {"KVMESH_RABBITMQ_NODES": "8"})
    assert e.value.code == 1
    assert capsys.readouterr().err == "[kvmesh] ERROR: KVMESH_RABBITMQ_NODES must be 1..7 (got '8')\n"


def test_all_parts_with_replicas_consumers_and_prometheus(tmp_path: Path) -> None:
    s = make_settings(ROOT, str(tmp_path / "run"), KVMESH_REPLICAS="3", KVMESH_CONSUMERS="1", KVMESH_PROMETHEUS="1")
    assert paths.all_parts(s, run_dir(tmp_path), {}) == [
        "postgres", "redis", "rabbitmq", "kv-service-1", "kv-service-2", "kv-service-3", "kv-consumer-1", "envoy",
        "nginx", "prometheus"]


@pytest.mark.parametrize("setup, environ, want", [
    ("new", {}, "1"), ("old-broker", {}, "8"), ("kept", {}, "5"), ("kept", {"KVMESH_PARTITIONS": "16"}, "16"),
    ("old-broker", {"KVMESH_PARTITIONS": "1024"}, "1024"),
])
def test_partitions_rule(tmp_path: Path, setup: str, environ: dict[str, str], want: str) -> None:
    run = run_dir(tmp_path)
    if setup == "old-broker":
        os.makedirs(f"{run.path}/rabbitmq")
    if setup == "kept":
        Path(run.path, "partitions").write_text("5\n")
    assert paths.read_partitions(run, environ) == want
    assert Path(run.path, "partitions").read_text() == want + "\n" and environ["KVMESH_PARTITIONS"] == want


@pytest.mark.parametrize("value", ["0", "1025", "x", "01", "12345"])
def test_partitions_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as e:
        paths.read_partitions(run_dir(tmp_path), {"KVMESH_PARTITIONS": value})
    assert e.value.code == 1
    assert capsys.readouterr().err == f"[kvmesh] ERROR: KVMESH_PARTITIONS must be 1..1024 (got '{value}')\n"


def test_log_file_of_each_part(tmp_path: Path) -> None:
    run = run_dir(tmp_path, "export KVMESH_RABBIT_NODE=kvmesh-run-abc@localhost\n")
    assert paths.log_file(run, "kv-service-1") == f"{run.logs}/kv-service-1.log"
    assert paths.log_file(run, "envoy-access") == f"{run.logs}/envoy-access.log"
    assert paths.log_file(run, "nginx-access") == f"{run.path}/nginx/logs/access.log"
    assert paths.log_file(run, "nginx-error") == f"{run.path}/nginx/logs/error.log"
    assert paths.log_file(run, "rabbitmq") == ""
    os.makedirs(f"{run.logs}/rabbitmq")
    for f in ("n@h_upgrade.log", "n@h.log"):
        Path(run.logs, "rabbitmq", f).write_text("x")
    assert paths.log_file(run, "rabbitmq") == f"{run.logs}/rabbitmq/n@h.log"
    assert paths.log_file(run, "rabbitmq-1") == f"{run.logs}/rabbitmq/kvmesh-run-abc@localhost.log"
    assert paths.log_file(run, "rabbitmq-3") == f"{run.logs}/rabbitmq/kvmesh-run-abc-r3@localhost.log"


def test_run_dir_layout_and_lock(tmp_path: Path) -> None:
    os.symlink(tmp_path, tmp_path / "link")
    run = RunDir(str(tmp_path / "link" / "r"))
    assert run.path == str(tmp_path / "r")  # physical
    assert all(os.path.isdir(d) for d in (run.pids, run.logs, run.conf))
    run.lock()
    run.lock()  # once per process
    other = RunDir(run.path)
    with pytest.raises(SystemExit):
        other.lock(secs=0.2)


VALUES = ["", "8088", "9091,9092", "a b", "x'y", 'q"q', "50%", "~home", "#x", "a=b", "$HOME", "tab\tx", "nl\nx",
          "é", "*?[]", "(;&|)"]


@pytest.mark.parametrize("value", VALUES)
def test_shell_quote_is_bash_printf_q(value: str) -> None:
    want = subprocess.run(["bash", "-c", 'printf %q "$1"', "_", value], capture_output=True, text=True).stdout
    assert envfile.shell_quote(value) == want
    assert envfile.shell_unquote(envfile.shell_quote(value)) == value


def test_stack_env_round_trip_bash_and_faults_reader(tmp_path: Path) -> None:
    s = make_settings(ROOT, str(tmp_path / "run"), KVMESH_CONSUMER_HTTP_PORTS="7001,7002",
                      KVMESH_REPLICA_ADMIN_PORTS="8001,8002", KVMESH_HTTP_BIND="0.0.0.0")
    st = commands.Stack(s, environ={})
    st.write_stack_env()
    text = Path(st.run.stack_env).read_text()
    assert text.splitlines()[0] == "# written by start.sh; read by start.sh status/stop/logs/restart and scripts/e2e.sh"
    assert "KVMESH_REPLICA_PORTS=9091\\,9092\n" in text and "KVMESH_PROMETHEUS_PORT=''\n" in text
    want = dict(s.stack_env())
    by_bash = subprocess.run(["bash", "-c", f'. "{st.run.stack_env}"; for n in {" ".join(want)}; do '
                              'printf "%s=%s\\n" "$n" "${!n}"; done'], capture_output=True, text=True).stdout
    assert dict(line.split("=", 1) for line in by_bash.splitlines()) == want
    assert envfile.read_env_file(st.run.stack_env) == want
    import stack as faults_stack  # scripts/faults/stack.py's reader
    assert faults_stack.read_env_file(st.run.stack_env) == want
    s2 = make_settings(ROOT, str(tmp_path / "run"))
    s2.apply_stack_env(envfile.read_env_file(st.run.stack_env))
    assert (s2.replica_ports, s2.consumer_ports, s2.replica_admin_ports, s2.auth, s2.http_bind, s2.prom_port) == (
        ["9091", "9092"], ["7001", "7002"], ["8001", "8002"], "on", "0.0.0.0", "")


def test_logs_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = commands.Stack(make_settings(ROOT, str(tmp_path / "run")), environ={})
    for f in ("envoy.log", "build.log", "kv-service-1.log", "x.txt"):
        Path(st.run.logs, f).write_text("x")
    os.makedirs(f"{st.run.logs}/rabbitmq")
    Path(st.run.logs, "rabbitmq", "n@h.log").write_text("x")
    os.makedirs(f"{st.run.path}/nginx/logs")
    Path(st.run.path, "nginx/logs/access.log").write_text("x")
    assert st.cmd_logs([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"[kvmesh] logs in {st.run.logs}:", "  build.log", "  envoy.log", "  kv-service-1.log", "  rabbitmq/n@h.log",
        f"  nginx-access           ({st.run.path}/nginx/logs/access.log)",
        "[kvmesh] ./start.sh logs PART  follows one (PART: kv-service-1, kv-consumer-1, envoy, envoy-access, nginx, "
        "nginx-access, nginx-error, postgres, redis, rabbitmq, supervisord ...)"]
    with pytest.raises(SystemExit) as e:
        st.cmd_logs(["nosuch"])
    assert e.value.code == 1
    assert capsys.readouterr().err == "[kvmesh] ERROR: no log for 'nosuch' (./start.sh logs lists them)\n"


def test_help_is_start_sh_header() -> None:
    text = commands.help_text(ROOT)
    assert text.startswith("kvmesh in one command: nginx -> Envoy")
    assert "  KVMESH_START_TIMEOUT     seconds to wait" in text and "set -euo" not in text
    header = Path(ROOT, "start.sh").read_text().split("\nset -euo")[0].splitlines()[1:]
    assert len(text.splitlines()) == len(header)


def test_unknown_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("KVMESH_MODE", "native")
    monkeypatch.setenv("KVMESH_RUN_DIR", str(tmp_path / "run"))
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"], root=ROOT)
    assert e.value.code == 1
    assert capsys.readouterr().err == ("[kvmesh] ERROR: unknown command 'frobnicate' "
                                       "(up|stop|status|logs|restart|upgrade|token|pg-switchover|backup|restore)\n")
    assert cli.main(["status"], root=ROOT) == 3


def test_ensure_compose_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KVMESH_HTTP_PORT=1\nKVMESH_PG_PASSWORD=\nexport KVMESH_REDIS_PASSWORD=", encoding="utf-8")
    environ = {"KVMESH_AMQP_PASSWORD": "given"}
    commands.ensure_compose_secrets(str(tmp_path), environ)
    lines = env_file.read_text().splitlines()
    assert lines[0] == "KVMESH_HTTP_PORT=1" and len(lines) == 4
    names = [x.split("=")[0] for x in lines[1:]]
    assert names == ["KVMESH_PG_SUPERUSER_PASSWORD", "KVMESH_PG_PASSWORD", "KVMESH_REDIS_PASSWORD"]
    assert all(len(x.split("=")[1]) == 32 and x.split("=")[1].isalnum() for x in lines[1:])
    assert (os.stat(env_file).st_mode & 0o777) == 0o600
    assert capsys.readouterr().out == (
        "[kvmesh] generated KVMESH_PG_SUPERUSER_PASSWORD KVMESH_PG_PASSWORD KVMESH_REDIS_PASSWORD into "
        f"{env_file} (mode 0600); compose's volumes keep the first ones they were started with\n")
    commands.ensure_compose_secrets(str(tmp_path), environ)
    assert capsys.readouterr().out == ""


def test_leftover_pids_finds_processes_naming_the_run_dir(tmp_path: Path) -> None:
    st = commands.Stack(make_settings(ROOT, str(tmp_path / "run")), environ={})
    assert st.leftover_pids() == []


def test_docker_mode_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[list[str]] = []

    class Done:
        returncode = 0

    def run(cmd: list[str], **kw: object) -> Done:
        calls.append(list(cmd))
        return Done()

    monkeypatch.setattr(cli.subprocess, "run", run)
    monkeypatch.setattr(cli.commands, "ensure_compose_secrets", lambda root, environ: None)
    s = make_settings(str(tmp_path), str(tmp_path / "run"))
    for cmd, args in (("stop", []), ("status", []), ("logs", ["nginx"]), ("restart", ["envoy"]), ("up", [])):
        assert cli.docker_main(cmd, args, s, {}) == 0
    assert calls == [["docker", "compose", "down"], ["docker", "compose", "ps"],
                     ["docker", "compose", "logs", "--tail", "200", "nginx"], ["docker", "compose", "restart", "envoy"],
                     [f"{tmp_path}/scripts/docs-ui.sh"], ["docker", "compose", "up", "-d", "--build", "--wait"]]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[kvmesh] docker mode (docker compose)"
    assert out[1] == "[kvmesh]   web + REST API  http://127.0.0.1:8088/     (nginx; /kv, /api, /healthz)"
    assert "[kvmesh]   logs            ./.run/logs   (./start.sh logs [part])" in out
    with pytest.raises(SystemExit) as e:
        cli.docker_main("token", [], s, {})
    assert e.value.code == 1
    assert capsys.readouterr().err == "[kvmesh] ERROR: unknown command 'token' (up|stop|status|logs|restart)\n"


def test_print_urls_with_auth_and_prometheus(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    s = make_settings(ROOT, str(tmp_path), KVMESH_AUTH="on", KVMESH_PROMETHEUS="1", KVMESH_PROMETHEUS_PORT="9090")
    commands.print_urls(s, "/r/secrets", "/r/logs")
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "[kvmesh] auth on: every API call needs 'Authorization: Bearer <token>'. A token for everything (30 days):",
        "[kvmesh]   /r/secrets/admin.token  (kvctl: KVMESH_TOKEN_FILE=that file; the web page asks for it)",
        "[kvmesh]   scoped ones: ./start.sh token --prefix app1/ --permissions read,write --ttl 24h"]
    assert out[6] == ("[kvmesh]   metrics page    http://127.0.0.1:8088/metrics.html   (live with KVMESH_PROMETHEUS=1; "
                      "Prometheus http://127.0.0.1:9090/)")
    assert out[-1] == "  curl 'http://127.0.0.1:8088/kv/all?prefix=he'"
