from __future__ import annotations

import os
from pathlib import Path

import pytest
from stack_fakes import make_settings

from kvstack.stack import settings


def test_defaults(tmp_path: Path) -> None:
    s = settings.from_environ(str(tmp_path), {}, run_dir_default="/x/.run")
    assert (s.mode, s.run_dir, s.http_port, s.http_bind, s.auth) == ("auto", "/x/.run", "8088", "127.0.0.1", "off")
    assert (s.envoy_port, s.admin_port, s.replicas, s.consumers) == ("8080", "9901", 2, 2)
    assert (s.java_opts, s.venv, s.timeout) == ("-Xmx512m", f"{tmp_path}/.run/venv", "120")
    assert s.replica_ports == ["9091", "9092"] and s.consumer_ports == [] and s.replica_admin_ports == []
    assert (s.prometheus, s.prom_port) == ("0", "")


@pytest.mark.parametrize("env, attr, want", [
    ({"KVMESH_REPLICAS": "3", "KVMESH_REPLICA_BASE_PORT": "7000"}, "replica_ports", ["7000", "7001", "7002"]),
    ({"KVMESH_REPLICA_PORTS": "9001, 9002,9003"}, "replica_ports", ["9001", "9002", "9003"]),
    ({"KVMESH_CONSUMER_HTTP_PORTS": "1 2"}, "consumer_ports", ["1", "2"]),
    ({"KVMESH_REPLICA_ADMIN_PORTS": "5,6"}, "replica_admin_ports", ["5", "6"]),
    ({"KVMESH_HTTP_PORT": ""}, "http_port", "8088"),  # empty means the default (${VAR:-default})
    ({"KVMESH_PROMETHEUS": "1", "KVMESH_PROMETHEUS_PORT": "9999"}, "prom_port", "9999"),
    ({"KVMESH_START_TIMEOUT": "30"}, "timeout", "30"),
    ({"KVMESH_JAVA_OPTS": "-Xmx1g -Xss1m"}, "java_opts", "-Xmx1g -Xss1m"),
])
def test_environment_values(tmp_path: Path, env: dict[str, str], attr: str, want: object) -> None:
    s = make_settings(str(tmp_path), "/r", **env)
    assert getattr(s, attr) == want


@pytest.mark.parametrize("env, message", [
    ({"KVMESH_REPLICAS": "0"}, "KVMESH_REPLICAS must be >= 1 (got '0')"),
    ({"KVMESH_CONSUMERS": "x"}, "KVMESH_CONSUMERS must be >= 1 (got 'x')"),
    ({"KVMESH_REPLICAS": "3", "KVMESH_REPLICA_PORTS": "1,2"}, "KVMESH_REPLICA_PORTS lists 2 ports for 3 replicas"),
    ({"KVMESH_CONSUMER_HTTP_PORTS": "1"}, "KVMESH_CONSUMER_HTTP_PORTS lists 1 ports for 2 consumers"),
    ({"KVMESH_REPLICA_ADMIN_PORTS": "1"}, "KVMESH_REPLICA_ADMIN_PORTS lists 1 ports for 2 replicas"),
    ({"KVMESH_HTTP_PORT": "70000"}, "invalid port '70000'"),
    ({"KVMESH_ENVOY_PORT": "0"}, "invalid port '0'"),
    ({"KVMESH_ENVOY_ADMIN_PORT": "x1"}, "invalid port 'x1'"),
    ({"KVMESH_REPLICA_PORTS": "1,,2"}, "invalid port ''"),
    ({"KVMESH_PROMETHEUS_PORT": "abc"}, "invalid port 'abc'"),
    ({"KVMESH_AUTH": "maybe"}, "KVMESH_AUTH must be auto, on or off (got 'maybe')"),
])
def test_validation_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str],
                           message: str) -> None:
    with pytest.raises(SystemExit) as e:
        make_settings(str(tmp_path), "/r", **env)
    assert e.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"[kvmesh] ERROR: {message}"


@pytest.mark.parametrize("auth, bind, want, warns", [
    ("auto", "127.0.0.1", "off", False), ("auto", "127.1.2.3", "off", False), ("auto", "::1", "off", False),
    ("auto", "localhost", "off", False), ("auto", "0.0.0.0", "on", False), ("on", "127.0.0.1", "on", False),
    ("off", "127.0.0.1", "off", False), ("off", "0.0.0.0", "off", True), ("on", "10.0.0.1", "on", False),
])
def test_auth_resolution(capsys: pytest.CaptureFixture[str], auth: str, bind: str, want: str, warns: bool) -> None:
    assert settings.resolve_auth(auth, bind) == want
    err = capsys.readouterr().err
    assert (err == f"[kvmesh] WARNING: KVMESH_AUTH=off with nginx on {bind}: anyone who reaches it can read and write "
            "every key\n") if warns else err == ""


def test_dotenv_fills_only_unset_variables(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n  KVMESH_HTTP_PORT=1234\nexport KVMESH_ENVOY_PORT=\"2345\"\nKVMESH_REPLICAS='3'\n"
        "KVMESH_CONSUMERS=9\n1BAD=x\nKVMESH_JAVA_OPTS=-Xmx1g -Dx=y\nKVMESH_NOEQ", encoding="utf-8")
    environ = {"KVMESH_CONSUMERS": "1", "KVMESH_RUN_DIR": "/r"}
    s = settings.from_environ(str(tmp_path), environ)
    assert (s.http_port, s.envoy_port, s.replicas, s.consumers) == ("1234", "2345", 3, 1)
    assert s.java_opts == "-Xmx1g -Dx=y"
    assert "1BAD" not in environ and environ["KVMESH_NOEQ"] == "KVMESH_NOEQ"


def test_default_run_dir_rule(tmp_path: Path) -> None:
    root = "/some/clone"
    assert settings.default_run_dir(root, euid=1000) == "/some/clone/.run"
    assert settings.default_run_dir(root, euid=0, can_enter=True) == "/some/clone/.run"
    hashed = settings.default_run_dir(root, euid=0, can_enter=False)
    assert hashed == "/var/tmp/kvmesh-run-" + settings.md5_prefix(root, 12)
    assert len(hashed) == len("/var/tmp/kvmesh-run-") + 12


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"), reason="needs root and setpriv")
def test_nobody_cannot_enter_a_0700_folder(tmp_path: Path) -> None:
    private = tmp_path / "p"
    private.mkdir(mode=0o700)
    open_ = tmp_path / "o"
    open_.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    assert not settings.nobody_can_enter(str(private))
    assert settings.default_run_dir(str(private)).startswith("/var/tmp/kvmesh-run-")


@pytest.mark.parametrize("text, want", [("1,2", ["1", "2"]), (" 1 , 2 ", ["1", "2"]), ("1,,2", ["1", "", "2"]),
                                        ("1,2,", ["1", "2"]), ("1  2", ["1", "2"]), ("", [])])
def test_split_ports_like_bash_read(text: str, want: list[str]) -> None:
    assert settings.split_ports(text) == want


def test_docker_mode_native_and_missing_docker(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert not settings.docker_usable("native")
    monkeypatch.setattr(settings.shutil, "which", lambda name: None)
    assert not settings.docker_usable("auto")
    with pytest.raises(SystemExit) as e:
        settings.docker_usable("docker")
    assert e.value.code == 1
    assert "KVMESH_MODE=docker but no docker command" in capsys.readouterr().err
