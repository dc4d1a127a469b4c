"""The release a stack runs (RUN/release/<id>) and ./start.sh upgrade's rolling order, with a made-up build."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_stack_status import make_stack

from kvstack.stack import install, release


def fake_build(root: Path, content: str = "v1") -> install.Jars:
    """A source tree's build: two jars with lib/ folders and the descriptor."""
    for module in ("kv-service", "kv-consumer", "kv-cli"):
        lib = root / module / "target" / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        (root / module / "target" / f"{module}-0.1.0-SNAPSHOT.jar").write_text(f"{module} {content}")
        (lib / "kv-core-0.1.0-SNAPSHOT.jar").write_text(f"core {content}")
        (lib / "grpc-api-1.0.jar").write_text("grpc")
    (root / "proto" / "target" / "descriptor").mkdir(parents=True, exist_ok=True)
    (root / "proto" / "target" / "descriptor" / "kvmesh.pb").write_text("descriptor")
    return install.Jars.of(str(root))


def test_a_release_is_a_copy_named_by_its_contents(tmp_path: Path) -> None:
    jars = fake_build(tmp_path / "src")
    run = str(tmp_path / "run")
    os.makedirs(run)
    a = release.snapshot(jars, run)
    assert a == release.snapshot(jars, run)  # the same build is the same release, copied once
    assert Path(a.service).read_text() == "kv-service v1"
    assert Path(a.consumer).parent.joinpath("lib", "kv-core-0.1.0-SNAPSHOT.jar").read_text() == "core v1"
    assert Path(a.descriptor).read_text() == "descriptor"
    # a rebuild rewrites target/ in place: the release's files do not change with it
    Path(jars.service).write_text("kv-service v2")
    assert Path(a.service).read_text() == "kv-service v1"
    b = release.snapshot(jars, run)
    assert b.id != a.id and len(b.id) == 12 and Path(b.service).read_text() == "kv-service v2"
    assert sorted(os.listdir(f"{run}/release")) == sorted([a.id, b.id])  # no temporary folder left


def test_current_keeps_the_release_before_it_and_removes_older_ones(tmp_path: Path) -> None:
    src, run = tmp_path / "src", str(tmp_path / "run")
    os.makedirs(run)
    assert release.current(run) is None
    made = []
    for v in ("v1", "v2", "v3"):
        rel = release.snapshot(fake_build(src, v), run)
        release.set_current(run, rel)
        made.append(rel)
        assert release.current(run) == rel
    assert sorted(os.listdir(f"{run}/release")) == sorted(["current", made[1].id, made[2].id])


def upgradable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: str = "v1", running_on: str | None = "v1"):
    st = make_stack(tmp_path)
    st.jars = fake_build(tmp_path / "src", running_on or "v0")
    if running_on:
        release.set_current(st.run.path, release.snapshot(st.jars, st.run.path))
    fake_build(tmp_path / "src", built)
    monkeypatch.setattr(install, "find_java", lambda root: "/jdk")
    monkeypatch.setattr(install, "find_envoy", lambda s: "/bin/envoy")
    monkeypatch.setattr(install, "build_jars", lambda s, run: False)
    rendered: list[str] = []
    monkeypatch.setattr(st, "render_configs", lambda envoy: rendered.append("edge"))
    monkeypatch.setattr(st, "render_supervisor_conf",
                        lambda envoy: rendered.append(st.release.id if st.release else ""))
    return st, rendered


def test_upgrade_restarts_consumers_then_replicas_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    st, rendered = upgradable(tmp_path, monkeypatch, built="v2")
    old = release.current(st.run.path)
    assert st.cmd_upgrade([]) == 0
    new = release.current(st.run.path)
    assert old and new and new.id != old.id and rendered == ["edge", new.id]
    assert st.sv.calls == [("replace", p) for p in  # type: ignore[attr-defined]
                           ("kv-consumer-1", "kv-consumer-2", "kv-service-1", "kv-service-2")]
    out = capsys.readouterr().out
    assert f"rolling upgrade: release {old.id} -> {new.id}, 4 parts one at a time" in out
    assert f"every replica and consumer runs release {new.id}" in out


def test_upgrade_with_nothing_changed_restarts_nothing_unless_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    st, _ = upgradable(tmp_path, monkeypatch)
    assert st.cmd_upgrade([]) == 0
    assert st.sv.calls == []  # type: ignore[attr-defined]
    assert "nothing to upgrade" in capsys.readouterr().out
    assert st.cmd_upgrade(["--force"]) == 0
    assert len(st.sv.calls) == 4  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        st.cmd_upgrade(["--now"])
    assert "usage: ./start.sh upgrade [--force]" in capsys.readouterr().err


def test_upgrade_stops_at_a_part_that_does_not_come_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    st, _ = upgradable(tmp_path, monkeypatch, built="v2")
    old = release.current(st.run.path)
    st.s.timeout = "1"
    replaced: list[str] = []

    def replace(name: str) -> bool:
        replaced.append(name)
        if name == "kv-consumer-2":
            st.health.probes.codes["http://127.0.0.1:7002/healthz"] = 503  # type: ignore[attr-defined]
        return True
    monkeypatch.setattr(st.sv, "replace", replace)
    assert st.cmd_upgrade([]) == 1
    assert replaced == ["kv-consumer-1", "kv-consumer-2"]
    assert "the upgrade stopped at kv-consumer-2" in capsys.readouterr().err
    assert release.current(st.run.path) == old  # still the release every other part runs


def test_upgrade_refuses_while_a_replica_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    st, _ = upgradable(tmp_path, monkeypatch, built="v2")
    st.health.probes.bodies["http://127.0.0.1:9901/clusters"] = (  # type: ignore[attr-defined]
        "kv_service::127.0.0.1:9091::health_flags::healthy\nkv_service::127.0.0.1:9092::health_flags::/failed_active_hc\n")
    monkeypatch.setattr("kvstack.stack.health.time.sleep", lambda _: None)
    monkeypatch.setattr("kvstack.stack.commands.wait_edge", lambda h, t: False)
    with pytest.raises(SystemExit):
        st.cmd_upgrade([])
    assert "not every replica is healthy in Envoy" in capsys.readouterr().err
    assert st.sv.calls == []  # type: ignore[attr-defined]
