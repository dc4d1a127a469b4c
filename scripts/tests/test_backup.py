"""`./start.sh backup` / `restore` (kvstack.stack.backup): the parts that need no server."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from stack_fakes import ROOT, FakeProbes, FakeSupervisor, make_settings

from kvstack.stack import backup
from kvstack.stack.commands import Stack

T = time.mktime((2026, 12, 7, 16, 40, 16, 0, 0, -1)) - time.timezone  # 2026-12-07 16:40:16 UTC (mktime is local)


def manifest(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "format": backup.MANIFEST_FORMAT, "file": "b.dump", "bytes": 4, "sha256": "", "partitions": 2,
        "snapshot_time": "2026-12-07T16:40:16.833017Z", "schema_version": "5",
        "last_apply_time": "2026-12-07T16:40:15.001000Z",
        "counts": {"keys": 20, "keys_live": 18, "keys_expired": 1, "tombstones": 1, "oplog_rows": 25,
                   "oplog_outcomes": {"APPLIED": 24, "REJECTED": 1}, "request_ids": 7,
                   "request_ids_not_applied": 2},
        "queued_at_start": {"messages": 3, "dead_lettered": 0,
                            "partitions": {"0": {"ready": 2, "unacknowledged": 0},
                                           "1": {"ready": 0, "unacknowledged": 1}}},
    }
    m.update(over)
    return m


def make_stack(tmp_path: Path, sv_running: bool = False, **env: str) -> Stack:
    s = make_settings(ROOT, str(tmp_path / "run"), KVMESH_MODE="native", **env)
    return Stack(s, environ=dict(env), probes=FakeProbes(), supervisor=FakeSupervisor({}, sv_running))


# ---------------------------------------------------------------- names and arguments

def test_default_file_name_is_utc_time_under_the_run_folder() -> None:
    assert backup.utc_stamp(T) == "20261207T164016Z"
    assert backup.default_backup_file("/r", T) == "/r/backups/kvmesh-20261207T164016Z.dump"
    assert backup.manifest_path("/r/backups/x.dump") == "/r/backups/x.dump.json"
    assert backup.iso_utc(T + 0.25) == "2026-12-07T16:40:16.250000Z"


def test_backup_arguments() -> None:
    assert backup.parse_backup_args([]) is None
    assert backup.parse_backup_args(["x.dump"]) == "x.dump"
    for bad in (["a", "b"], ["--full"]):
        with pytest.raises(SystemExit):
            backup.parse_backup_args(bad)


def test_restore_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert backup.parse_restore_args(["b.dump"]) == str(tmp_path / "b.dump")
    for bad in ([], ["a", "b"], ["-x"]):
        with pytest.raises(SystemExit):
            backup.parse_restore_args(bad)


def test_human_bytes() -> None:
    assert backup.human_bytes(512) == "512 B"
    assert backup.human_bytes(8800) == "8.6 KiB"
    assert backup.human_bytes(5 * 1024 * 1024) == "5.0 MiB"


# ---------------------------------------------------------------- queue depths

LIST_QUEUES = """Timeout: 60.0 seconds ...
Listing queues for vhost / ...
amq.gen-WgT8Cn3ASYoSrudbCxUxQw\t0\t0
kv.ops.0\t2\t0
kv.ops.dead\t4\t1
kv.ops.1\t0\t1
kv.events\t9\t9
other.ops.5\t7\t7
"""


def test_parse_queue_depths_counts_partition_queues_ready_and_unacknowledged() -> None:
    q = backup.parse_queue_depths(LIST_QUEUES)
    assert q.partitions == {0: (2, 0), 1: (0, 1)}
    assert q.dead == 5
    assert q.messages == 3
    assert q.to_json() == {"messages": 3, "dead_lettered": 5,
                           "partitions": {"0": {"ready": 2, "unacknowledged": 0},
                                          "1": {"ready": 0, "unacknowledged": 1}}}


def test_parse_queue_depths_with_another_prefix_and_noise() -> None:
    q = backup.parse_queue_depths("other.ops.5 7 7\nkv.ops.0 1 1\nbroken line\nother.ops.x 1 2\n", prefix="other")
    assert q.partitions == {5: (7, 7)}
    assert q.messages == 14
    assert backup.parse_queue_depths("").messages == 0


def test_queued_sentence_states_the_count_and_that_they_are_not_in_the_backup() -> None:
    text = backup.queued_sentence(backup.parse_queue_depths(LIST_QUEUES))
    assert text.startswith("3 queued messages of acknowledged writes (partition 0: 2, partition 1: 1) were not yet "
                           "applied when the backup began: those writes are not in this backup (this stack applies "
                           "them as usual)")
    one = backup.queued_sentence(backup.QueueDepths({0: (1, 0)}))
    assert one.startswith("1 queued message of acknowledged writes (partition 0: 1)")
    err = backup.queued_sentence(backup.QueueDepths(error="rabbitmqctl did not answer within 60s"))
    assert "could not be read (rabbitmqctl did not answer within 60s)" in err and "unknown" in err
    assert backup.QueueDepths(error="x").to_json() == {"error": "x"}


def test_restored_queued_sentence_from_a_manifest() -> None:
    text = backup.restored_queued_sentence(manifest()["queued_at_start"])
    assert "3 queued messages of acknowledged writes: partition 0: 2, partition 1: 1" in text
    assert "this store does not have them" in text
    assert "unknown" in backup.restored_queued_sentence({"error": "x"})
    assert "unknown" in backup.restored_queued_sentence({})


# ---------------------------------------------------------------- manifest

def test_summary_lines_say_what_the_backup_holds() -> None:
    first, second = backup.summary_lines(manifest())
    assert first == ("snapshot taken 2026-12-07T16:40:16.833017Z (the store as of that instant), schema version 5, "
                     "2 partition queue(s)")
    assert second == ("keys: 20 (18 live, 1 tombstones, 1 expired not yet swept); operations: 25 (APPLIED 24, "
                      "REJECTED 1), the last applied 2026-12-07T16:40:15.001000Z; request ids: 7 (2 of writes not "
                      "applied at the snapshot)")


def test_counts_mismatch_compares_what_a_restore_must_reproduce() -> None:
    m = manifest()
    got = {**m["counts"], "schema_version": "5", "keys_live": 3, "keys_expired": 16}  # the clock moved on
    assert backup.counts_mismatch(m, got) == []
    got.update(oplog_rows=24, oplog_outcomes={"APPLIED": 24})
    assert backup.counts_mismatch(m, got) == [
        "oplog_rows: backup 25, restored 24",
        "oplog_outcomes: backup {'APPLIED': 24, 'REJECTED': 1}, restored {'APPLIED': 24}"]
    got = {**m["counts"], "schema_version": "4"}
    assert backup.counts_mismatch(m, got) == ["schema_version: backup '5', restored '4'"]


def test_read_manifest(tmp_path: Path) -> None:
    dump = tmp_path / "b.dump"
    assert backup.read_manifest(str(dump)) is None
    Path(backup.manifest_path(str(dump))).write_text(json.dumps(manifest()), encoding="utf-8")
    m = backup.read_manifest(str(dump))
    assert m is not None and m["partitions"] == 2
    Path(backup.manifest_path(str(dump))).write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(SystemExit):
        backup.read_manifest(str(dump))
    Path(backup.manifest_path(str(dump))).write_text("{", encoding="utf-8")
    with pytest.raises(SystemExit):
        backup.read_manifest(str(dump))


def test_check_backup_refuses_a_file_its_manifest_does_not_describe(tmp_path: Path) -> None:
    dump = tmp_path / "b.dump"
    with pytest.raises(SystemExit):
        backup.check_backup(str(dump))  # missing
    dump.write_bytes(b"PGDMP")
    Path(backup.manifest_path(str(dump))).write_text(json.dumps(manifest(bytes=4)), encoding="utf-8")
    with pytest.raises(SystemExit):
        backup.check_backup(str(dump))  # size
    Path(backup.manifest_path(str(dump))).write_text(json.dumps(manifest(bytes=5, sha256="00" * 32)),
                                                     encoding="utf-8")
    with pytest.raises(SystemExit):
        backup.check_backup(str(dump))  # checksum


# ---------------------------------------------------------------- schema versions

def test_schema_versions() -> None:
    assert backup.schema_rank("5") < backup.schema_rank("5.1") < backup.schema_rank("10")
    assert backup.schema_problem("5", "5") == ""
    assert backup.schema_problem("4", "5") == ""  # older: Flyway migrates it at start
    assert "newer than this code's migrations (up to 5)" in backup.schema_problem("6", "5")
    assert backup.schema_problem("", "5") == ""
    local = backup.local_schema_version(ROOT)
    assert local and backup.schema_problem(local, local) == ""
    assert backup.local_schema_version("/nonexistent") == ""


# ---------------------------------------------------------------- refusals

def test_fresh_problem(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "rabbitmq" / "mnesia").mkdir(parents=True)  # an empty broker folder is fresh
    (run / "secrets").mkdir()
    assert backup.fresh_problem(str(run)) == ""
    (run / "rabbitmq" / "mnesia" / "node").mkdir()
    assert "RabbitMQ data (rabbitmq/mnesia)" in backup.fresh_problem(str(run))
    (run / "postgres" / "data").mkdir(parents=True)
    (run / "postgres" / "data" / "PG_VERSION").write_text("15\n", encoding="utf-8")
    (run / "servers.state").write_text("", encoding="utf-8")
    text = backup.fresh_problem(str(run))
    assert text.startswith(f"{run} is not a fresh run folder: it holds PostgreSQL data (postgres/data), RabbitMQ data "
                           "(rabbitmq/mnesia), prepared servers (servers.state).")
    assert text.endswith("nothing was changed")


def _restorable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **over: Any) -> str:
    dump = tmp_path / "b.dump"
    dump.write_bytes(b"PGDMP")
    m = manifest(**over)
    monkeypatch.setattr(backup, "check_backup", lambda _f: m)
    return str(dump)


def _no_servers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def fake(_stack: Stack, *args: str, env: object = None) -> bool:
        calls.append(args)
        return True
    monkeypatch.setattr(backup, "_servers", fake)
    return calls


def test_restore_refuses_a_folder_with_a_running_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    dump = _restorable(tmp_path, monkeypatch)
    calls = _no_servers(monkeypatch)
    st = make_stack(tmp_path, sv_running=True)
    with pytest.raises(SystemExit):
        backup.cmd_restore(st, [dump])
    assert "a stack is running from" in capsys.readouterr().err
    assert calls == []


def test_restore_refuses_a_folder_with_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    dump = _restorable(tmp_path, monkeypatch)
    calls = _no_servers(monkeypatch)
    st = make_stack(tmp_path)
    os.makedirs(f"{st.run.path}/postgres/data")
    with pytest.raises(SystemExit):
        backup.cmd_restore(st, [dump])
    assert "is not a fresh run folder: it holds PostgreSQL data" in capsys.readouterr().err
    assert calls == []
    assert sorted(os.listdir(st.run.path)) == [".stack.lock", "conf", "logs", "pids", "postgres"]


def test_restore_refuses_a_newer_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    dump = _restorable(tmp_path, monkeypatch, schema_version="999")
    calls = _no_servers(monkeypatch)
    with pytest.raises(SystemExit):
        backup.cmd_restore(make_stack(tmp_path), [dump])
    assert "newer than this code's migrations" in capsys.readouterr().err
    assert calls == []


def test_restore_takes_the_backups_partition_count_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = _restorable(tmp_path, monkeypatch, partitions=4)
    _no_servers(monkeypatch)

    def stop_here(_stack: Stack, _dump: str) -> dict[str, Any]:
        raise backup.BackupError("stop here")
    monkeypatch.setattr(backup, "load_dump", stop_here)
    monkeypatch.setattr(Stack, "check_ports_free", lambda self, ports: None)
    st = make_stack(tmp_path)
    with pytest.raises(SystemExit):
        backup.cmd_restore(st, [dump])
    assert st.environ["KVMESH_PARTITIONS"] == "4"
    st = make_stack(tmp_path / "other", KVMESH_PARTITIONS="2")
    with pytest.raises(SystemExit):
        backup.cmd_restore(st, [dump])
    assert st.environ["KVMESH_PARTITIONS"] == "2"


def test_restore_prepares_postgres_alone_without_a_standby(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = _restorable(tmp_path, monkeypatch)
    seen: list[tuple[tuple[str, ...], str]] = []

    def fake(_stack: Stack, *args: str, env: dict[str, str] | None = None) -> bool:
        seen.append((args[:1] + args[2:], (env or {}).get("KVMESH_PG_STANDBY", "-")))
        return True
    monkeypatch.setattr(backup, "_servers", fake)
    got = {**manifest()["counts"], "schema_version": "5"}
    monkeypatch.setattr(backup, "load_dump", lambda _s, _d: got)
    monkeypatch.setattr(Stack, "check_ports_free", lambda self, ports: None)
    monkeypatch.setattr(Stack, "cmd_up", lambda self: 0)
    assert backup.cmd_restore(make_stack(tmp_path, KVMESH_PG_STANDBY="1"), [dump]) == 0
    assert seen == [(("install",), "-"), (("prepare",), "0"), (("ctl", "postgres", "start"), "0"),
                    (("ctl", "postgres", "stop"), "0")]


def test_restore_stops_the_servers_when_the_counts_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    dump = _restorable(tmp_path, monkeypatch)
    calls = _no_servers(monkeypatch)
    monkeypatch.setattr(backup, "load_dump", lambda _s, _d: {**manifest()["counts"], "keys": 19,
                                                             "schema_version": "5"})
    monkeypatch.setattr(Stack, "check_ports_free", lambda self, ports: None)
    with pytest.raises(SystemExit):
        backup.cmd_restore(make_stack(tmp_path), [dump])
    assert "keys: backup 20, restored 19" in capsys.readouterr().err
    assert calls[-1][0] == "stop"


def test_backup_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    st = make_stack(tmp_path, sv_running=True)
    st.write_stack_env()
    existing = tmp_path / "b.dump"
    existing.write_bytes(b"x")
    with pytest.raises(SystemExit):
        backup.cmd_backup(st, [str(existing)])
    assert "already exists; a backup never overwrites one" in capsys.readouterr().err
    assert existing.read_bytes() == b"x"


def test_backup_needs_a_running_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        backup.cmd_backup(make_stack(tmp_path), [])
    assert "not running" in capsys.readouterr().err


# ---------------------------------------------------------------- the password file

def test_passfile_is_private_escaped_and_removed(tmp_path: Path) -> None:
    with backup.passfile(str(tmp_path), "a:b\\c") as env:
        path = env["PGPASSFILE"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert Path(path).read_text(encoding="utf-8") == "*:*:*:kvmesh:a\\:b\\\\c\n"
        assert not any(k == "PGPASSWORD" for k in env)
    assert not os.path.exists(path)
    assert stat.S_IMODE(os.stat(tmp_path / "secrets").st_mode) == 0o700


def test_conninfo_prefers_the_primary() -> None:
    assert backup.conninfo(["5432"]) == ("host=127.0.0.1 port=5432 user=kvmesh dbname=kvmesh "
                                         "target_session_attrs=read-write")
    assert "host=127.0.0.1,127.0.0.1 port=5432,5433 " in backup.conninfo(["5432", "5433"])
