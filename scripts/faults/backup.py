"""Backup and restore under load (issue 19, item 4): `./start.sh backup FILE` on the running stack while the load
writes, more writes afterwards, then `./start.sh restore FILE` into a fresh run folder on free ports, and checks:

  a) what was applied before the backup began is in the restored store, as it was: every SYNC write answered
     "applied" before T0 (the moment the command was started) with its operation id, APPLIED, and its version; every
     kv_oplog row of the source with apply_time < T0 with the same key, kind, version and outcome; every kv row of
     the source unchanged since before T0 with the same version and value; and the restored store is one snapshot:
     each of its oplog rows is the source's, none applied after the snapshot's time, and each key's version is the
     one of its last applied operation;
  b) nothing applied after the backup finished is in it (SYNC writes answered "applied" that were sent after the
     command ended: their operations are absent, their keys at older versions);
  c) the command said how many queued writes were not yet applied when it began (its manifest's figure);
  d) the restored stack serves through its nginx: a key of (a) is read back with its value and version, and SYNC
     writes apply, versions continuing from the restored ones.
Then the restored stack is stopped and its folder removed, whatever happened (finally).

About "before T0": a row's apply_time is taken before its batch commits, so a row stamped just before T0 could in
principle commit after the snapshot; the snapshot is taken a second or more after T0 (the command starts, asks the
broker, then takes it), and the phase notes that margin. SYNC answers come after the commit, so (a)'s first statement
has no such caveat.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from api import Api, read_result
from context import Ctx, Phase
from stack import Stack

BACKUP_TIMEOUT_S = 180.0
RESTORE_TIMEOUT_S = 420.0
STOP_TIMEOUT_S = 180.0
AFTER_S = 4.0            # load after the backup, before the restore
CLOCK_SLACK_S = 0.1      # apply_time against the snapshot statement's start (one clock; the snapshot is taken a moment
                         # after the statement starts, and a batch stamped in between and committed before it is in it)
# what the restored stack may take from the environment; every other KVMESH_* is the source stack's
KEEP_ENV = ("KVMESH_ENVOY_VENV", "KVMESH_STACK_VENV", "KVMESH_ENVOY_BIN", "KVMESH_JAVA_OPTS", "KVMESH_START_TIMEOUT",
            "KVMESH_SERVERS_START_TIMEOUT")


def _run(cmd: list[str], env: dict, timeout: float) -> tuple[int, str, float]:
    t = time.time()
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
        return res.returncode, res.stdout + res.stderr, time.time() - t
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(timed out after {timeout:.0f}s)", time.time() - t


def _last(out: str, pattern: str) -> str:
    lines = [ln for ln in out.splitlines() if re.search(pattern, ln)]
    return lines[-1].strip() if lines else ""


def _restore_env(root: str, run_dir: str, partitions: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVMESH_") or k in KEEP_ENV}
    res = subprocess.run([os.path.join(root, "scripts/free-ports"), "11"], capture_output=True, text=True, timeout=30)
    http, envoy, admin, replica, consumer, replica_admin, pg, redis, amqp, dist, _ = res.stdout.split()
    env.update(KVMESH_MODE="native", KVMESH_RUN_DIR=run_dir, KVMESH_HTTP_PORT=http, KVMESH_ENVOY_PORT=envoy,
               KVMESH_ENVOY_ADMIN_PORT=admin, KVMESH_REPLICAS="1", KVMESH_CONSUMERS="1",
               KVMESH_REPLICA_PORTS=replica, KVMESH_CONSUMER_HTTP_PORTS=consumer,
               KVMESH_REPLICA_ADMIN_PORTS=replica_admin, KVMESH_PG_PORT=pg, KVMESH_REDIS_PORT=redis,
               KVMESH_AMQP_PORT=amqp, KVMESH_RABBIT_DIST_PORT=dist, KVMESH_PARTITIONS=partitions, KVMESH_AUTH="off",
               KVMESH_PG_STANDBY="0", KVMESH_RABBITMQ_NODES="1", KVMESH_PROMETHEUS="0")
    return env


def _oplog(stack: Stack) -> dict[str, tuple]:
    """id -> (key, kind, version, outcome, apply epoch, no-op): a no-op is applied without a change (a delete of a
    missing key: the log gives a reason, the version is the key's unchanged one)."""
    rows = stack.psql("SELECT id, key, kind, coalesce(version::text, ''), outcome, extract(epoch from apply_time),"
                      " coalesce(reason, '') <> '' FROM kv_oplog", timeout=120)
    return {r[0]: (r[1], r[2], int(r[3]) if r[3] else None, r[4], float(r[5]), r[6] == "t") for r in rows}


def _kv(stack: Stack) -> dict[str, tuple]:
    """key -> (version, value or None for a tombstone, update epoch)."""
    rows = stack.psql("SELECT key, version, value IS NULL, coalesce(md5(value), ''), extract(epoch from update_time)"
                      " FROM kv", timeout=120)
    return {r[0]: (int(r[1]), None if r[2] == "t" else r[3], float(r[4])) for r in rows}


def _md5(value: str | None) -> str | None:
    """md5 of a value as PostgreSQL's md5(value) gives it; a history digest ("md5:…") is one already."""
    if value is None:
        return None
    return value[4:] if value.startswith("md5:") else hashlib.md5(value.encode()).hexdigest()


def _sample(items: list, n: int = 3) -> str:
    return "; ".join(str(x) for x in items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def backup_restore(ctx: Ctx, ph: Phase) -> None:
    stack = ctx.stack
    work = tempfile.mkdtemp(prefix="kvmesh-backup.", dir="/tmp")
    os.chmod(work, 0o755)          # PostgreSQL and RabbitMQ run as their own users and must reach the run folder
    dump, run_dir = os.path.join(work, "store.dump"), os.path.join(work, "run")
    env: dict | None = None
    try:
        # ---------------------------------------------------------------- backup under load
        t0 = time.time()
        ph.t_inject = t0
        rc, out, took = _run([os.path.join(stack.root, "start.sh"), "backup", dump], stack.env, BACKUP_TIMEOUT_S)
        t1 = time.time()
        with open(os.path.join(work, "backup.out"), "w", encoding="utf-8") as f:
            f.write(out)
        ph.note(f"./start.sh backup: exit {rc} in {took:.1f}s")
        for line in out.splitlines():
            if line.startswith("[kvmesh] ") and not line.startswith("[kvmesh] restore:"):
                ph.note("  " + line.removeprefix("[kvmesh] ")[:400])
        ok = rc == 0 and os.path.isfile(dump) and os.path.isfile(dump + ".json")
        ph.check("backup taken under load", ok, f"exit {rc} in {took:.1f}s" if ok else out.strip()[-400:])
        if not ok:
            return
        with open(dump + ".json", encoding="utf-8") as f:
            m = json.load(f)
        queued = m.get("queued_at_start", {})
        ph.figures.update(backup_s=round(took, 1), backup_bytes=m["bytes"], queued_messages=queued.get("messages", -1),
                          snapshot_after_t0_s=round(m["snapshot_epoch"] - t0, 2))
        ph.note(f"snapshot {m['snapshot_epoch'] - t0:.2f}s after T0, {m['bytes']} bytes, "
                f"{m['counts']['oplog_rows']} operations, {m['counts']['keys']} keys")

        # c) the queued count, stated
        said = re.search(r"(\d+) queued messages? of acknowledged writes \(([^)]*)\) were not yet applied when the "
                         r"backup began: those writes are not in this backup \(this stack applies them as usual\)", out)
        ph.check("queued writes stated", bool(said) and int(said.group(1)) == queued.get("messages"),
                 f"the output says {said.group(0)[:160]!r}; manifest: {queued}" if said else
                 f"no such sentence in the output; manifest: {queued}")

        ctx.sleep(AFTER_S)   # the load writes more: none of it may be in the restored store

        # ---------------------------------------------------------------- restore elsewhere
        env = _restore_env(stack.root, run_dir, str(m.get("partitions") or stack.env.get("KVMESH_PARTITIONS") or 1))
        rc, out, took = _run([os.path.join(stack.root, "start.sh"), "restore", dump], env, RESTORE_TIMEOUT_S)
        with open(os.path.join(work, "restore.out"), "w", encoding="utf-8") as f:
            f.write(out)
        ph.figures["restore_s"] = round(took, 1)
        ph.note(f"./start.sh restore into {run_dir} (nginx :{env['KVMESH_HTTP_PORT']}, "
                f"{env['KVMESH_PARTITIONS']} partitions): exit {rc} in {took:.1f}s")
        for pattern in ("pg_restore loaded", "restore done", "not restored"):
            for line in out.splitlines():
                if pattern in line:
                    ph.note("  " + line.removeprefix("[kvmesh] ").strip()[:400])
        ph.check("restored into a fresh run folder", rc == 0, f"exit {rc} in {took:.1f}s" if rc == 0 else
                 out.strip()[-600:])
        if rc != 0:
            return
        restored = Stack(stack.root, run_dir)

        # ---------------------------------------------------------------- a) and b): the stores compared
        r_oplog, r_kv = _oplog(restored), _kv(restored)
        s_oplog, s_kv = _oplog(stack), _kv(stack)
        snap = m["snapshot_epoch"]

        writes, _, _ = ctx.history.snapshot()
        sync_before = [w for w in writes if w.outcome == "acked" and w.status == "applied" and w.t_done < t0]
        bad = [f"{w.key} {w.op_id} v{w.version}: restored {r_oplog.get(w.op_id)}" for w in sync_before
               if not (w.op_id in r_oplog and r_oplog[w.op_id][3] == "APPLIED"
                       and (w.version is None or r_oplog[w.op_id][2] == w.version))]
        ph.check("applied before the backup: in the restored store", not bad and bool(sync_before),
                 f"{len(sync_before)} SYNC writes answered 'applied' before T0, each APPLIED in the restored store "
                 "with the version it was answered" if not bad else f"{len(bad)} missing or different: {_sample(bad)}")

        before = {i: r for i, r in s_oplog.items() if r[4] < t0}
        bad = [f"{i} {r[:4]} -> {r_oplog.get(i, ('absent',))[:4]}" for i, r in before.items()
               if r_oplog.get(i, ())[:4] != r[:4]]
        ph.check("operations applied before T0 restored", not bad and bool(before),
                 f"{len(before)} kv_oplog rows of the source applied before T0 (of {len(r_oplog)} restored): each "
                 "restored with the same key, kind, version and outcome" if not bad else
                 f"{len(bad)} missing or different: {_sample(bad)}")

        # one snapshot: each restored operation is the source's, none applied after the snapshot, and each key is at
        # the version of its last applied operation (a version 0 row is a delete of a missing key: no kv row)
        foreign = [f"{i} {r[:4]} (source {s_oplog.get(i, ('absent',))[:4]})" for i, r in r_oplog.items()
                   if s_oplog.get(i, ())[:4] != r[:4]]
        late = [f"{i} applied {r[4] - snap:+.3f}s after the snapshot" for i, r in r_oplog.items()
                if r[4] > snap + CLOCK_SLACK_S]
        last: dict[str, int] = {}
        for r in r_oplog.values():
            if r[3] == "APPLIED" and r[2]:
                last[r[0]] = max(last.get(r[0], 0), r[2])
        torn = [f"{k} v{v[0]}, last applied operation v{last.get(k)}" for k, v in r_kv.items() if last.get(k) != v[0]]
        torn += [f"{k}: operation v{v} but no kv row" for k, v in last.items() if k not in r_kv]
        ph.check("restored store is one snapshot", not (foreign or late or torn),
                 f"{len(r_oplog)} operations, each the source's, none applied after the snapshot; {len(r_kv)} keys, "
                 "each at its last applied operation's version" if not (foreign or late or torn) else
                 f"not the source's: {_sample(foreign)}; after the snapshot: {_sample(late)}; keys not at their last "
                 f"operation: {_sample(torn)}")

        # every key as of T0: at least the version its last operation before T0 gave it (operations between T0 and
        # the snapshot may have moved it on), at most the source's current one; and the value (or tombstone) of the
        # write that made its restored version (the load's writes are known by operation id); keys unchanged in the
        # source since T0: the same version and value
        at_t0: dict[str, int] = {}
        for r in before.values():
            if r[3] == "APPLIED" and r[2]:
                at_t0[r[0]] = max(at_t0.get(r[0], 0), r[2])
        behind = [f"{k}: v{v} before T0, restored {r_kv.get(k, ('absent',))[0]}, source now {s_kv.get(k, ('-',))[0]}"
                  for k, v in at_t0.items() if not (v <= r_kv.get(k, (-1,))[0] <= s_kv.get(k, (-1,))[0])]
        op_of = {(r[0], r[2]): (i, r[1]) for i, r in r_oplog.items() if r[3] == "APPLIED" and r[2] and not r[5]}
        sent = {w.op_id: w for w in writes if w.op_id}
        wrong, known = [], 0
        for k, (version, md5, _) in r_kv.items():
            op_id, kind = op_of.get((k, version), ("", ""))
            w = sent.get(op_id)
            if w is None:
                continue     # not a write of this run's history (or another suite's key)
            known += 1
            want = None if w.kind == "DELETE" else _md5(w.value)
            if md5 != want or (md5 is None) != (kind != "PUT"):
                wrong.append(f"{k} v{version}: restored {'tombstone' if md5 is None else 'value ' + md5[:8]}, "
                             f"its write {w.kind} {w.rid}")
        unchanged = {k: v for k, v in s_kv.items() if v[2] < t0}
        bad_kv = [f"{k} v{v[0]} -> {r_kv.get(k)}" for k, v in unchanged.items() if r_kv.get(k, ())[:2] != v[:2]]
        ok = not (behind or wrong or bad_kv) and bool(at_t0) and known > 0
        ph.check("keys as of T0 restored", ok,
                 f"{len(at_t0)} keys written before T0: each restored at or after that version; {known} restored keys "
                 f"hold the value of the write that made their version; {len(unchanged)} keys unchanged since T0: "
                 "the same version and value" if ok else
                 f"behind: {_sample(behind)}; wrong value: {_sample(wrong)}; changed: {_sample(bad_kv)} "
                 f"({len(at_t0)} keys before T0, {known} known)")

        # (a no-op, a delete of a deleted key, answers the key's unchanged version: only its operation id counts)
        after = [w for w in writes if w.outcome == "acked" and w.status == "applied" and w.t_send > t1]
        leaked = [f"{w.key} {w.op_id} v{w.version} (restored: {r_kv.get(w.key, ('absent',))[0]})" for w in after
                  if w.op_id in r_oplog or (w.version is not None and r_kv.get(w.key, (0,))[0] >= w.version
                                            and not s_oplog.get(w.op_id, (None,) * 6)[5])]
        ph.check("applied after the backup: not in the restored store", not leaked and bool(after),
                 f"{len(after)} SYNC writes answered 'applied' after the backup ended: none in the restored store"
                 if not leaked else f"{len(leaked)} present: {_sample(leaked)}")

        # ---------------------------------------------------------------- d) the restored stack serves
        api = Api(restored.http_port)
        live = sorted(k for k, v in r_kv.items() if v[1] is not None and k.startswith(ctx.prefix)
                      and k in at_t0)
        key = live[0] if live else next((k for k, v in r_kv.items() if v[1] is not None), None)
        problems, source = [], ""
        if key is None:
            problems.append("no live key in the restored store")
        else:
            a = api.get(key)
            version, value, source = read_result(a)
            want_md5 = r_kv[key][1]
            got_md5 = hashlib.md5(value.encode()).hexdigest() if value is not None else None
            if version != r_kv[key][0] or got_md5 != want_md5:
                problems.append(f"GET {key}: HTTP {a.status} version {version} (restored v{r_kv[key][0]})"
                                f"{'' if got_md5 == want_md5 else ', another value'}")
            a = api.put(key, "written after the restore", None, "SYNC", "kv")
            v = (a.body or {}).get("version")
            if a.status != 200 or (a.body or {}).get("status") != "applied" or str(v) != str(r_kv[key][0] + 1):
                problems.append(f"SYNC PUT {key}: HTTP {a.status} {str(a.body)[:160]} (want version "
                                f"{r_kv[key][0] + 1})")
            new_key = f"{ctx.prefix}restored/new"
            a = api.put(new_key, "new", None, "SYNC", "api")
            body = a.body or {}
            if a.status != 200 or body.get("status") != "applied" or str(body.get("version")) != "1":
                problems.append(f"SYNC PUT {new_key}: HTTP {a.status} {str(a.body)[:160]}")
        ph.check("restored stack serves through nginx", not problems,
                 f"GET {key} -> v{r_kv[key][0]} with its value (from {source}); SYNC PUT -> v{r_kv[key][0] + 1}; "
                 "SYNC PUT of a new key -> v1" if not problems else "; ".join(problems))
    finally:
        if env is not None:
            rc, out, took = _run([os.path.join(ctx.stack.root, "start.sh"), "stop"], env, STOP_TIMEOUT_S)
            ph.note(f"restored stack stopped: exit {rc} in {took:.1f}s"
                    + ("" if rc == 0 else f" ({out.strip()[-200:]})"))
        shutil.rmtree(work, ignore_errors=True)
