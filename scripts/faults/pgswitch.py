#!/usr/bin/env python3
"""The PostgreSQL switchover test: write load through nginx, `./start.sh pg-switchover` in the middle of it, then a
drain and the fault suite's verification against the new primary.

Run by scripts/pg-switchover-test.sh, which starts a stack with KVMESH_PG_STANDBY=1 in a private run folder:

  pgswitch.py --root REPO --run-dir RUN [--json FILE] [--doc FILE]

Passes when the switchover command succeeded, the standby was a streaming synchronous standby before it, the new
primary takes writes, the consumers resumed by themselves (the apply pause is measured from kv_oplog's apply times),
every acknowledged write is applied exactly once (lost = 0, duplicated = 0), nothing is stale and the partition
queues are empty at the end. Exits 0 when it passed, 1 when not, 2 on a set-up error.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from context import CONFIGS, Ctx, Phase  # noqa: E402
from report import git_commit, machine, verdict, write_json  # noqa: E402
from stack import Stack, _read_pid_file, pid_alive, port_open, wait_until  # noqa: E402
from verify import Verifier  # noqa: E402

T0 = time.time()
RESUME_GOAL_S = 30.0   # the consumers apply again within this long of the switchover's start
DOC_BEGIN, DOC_END = "<!-- BEGIN pg-switchover -->", "<!-- END pg-switchover -->"


def step(msg: str) -> None:
    print(f"[pg-switchover +{time.time() - T0:.0f}s] {msg}", flush=True)


def load_average() -> float:
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return -1.0


def apply_pause(verifier: Verifier, t_inject: float) -> tuple[float, float, float]:
    """The longest gap between two consecutive applies (kv_oplog.apply_time, the consumers' clock) that ends after the
    switchover began -> (gap seconds, last apply before it, first apply after it)."""
    times = sorted(r.apply_time for r in verifier.oplog())
    best = (0.0, t_inject, t_inject)
    for a, b in zip(times, times[1:]):
        if b >= t_inject and a <= t_inject + 60 and b - a > best[0]:
            best = (b - a, a, b)
    return best


def write_doc_section(path: str, result: dict) -> None:
    """The switchover's section of docs/reliability.md, between its markers (replaced, or appended once)."""
    t = result["total"]
    f = result["figures"]
    body = f"""{DOC_BEGIN}
## PostgreSQL switchover (standby promoted under load)

`{result['command']}` on {result['finished_utc']} — {result['machine']} — commit {result['commit']}.
{"Every check passed." if result['ok'] else "**Some checks failed**: " + "; ".join(t['failures']) + "."}
Load average {result['load_average'][0]:.1f} at the start and {result['load_average'][1]:.1f} at the end on \
{os.cpu_count()} cores.

The stack ran with `KVMESH_PG_STANDBY=1`: a second PostgreSQL (`postgres-standby`) streams from the primary by
synchronous replication, and every replica and consumer has
`jdbc:postgresql://127.0.0.1:P1,127.0.0.1:P2/kvmesh?targetServerType=primary&hostRecheckSeconds=2`. With
{result['config']['writers']} writers ({result['config']['writers'] * result['config']['write_rate']:.0f} writes/s,
80 % SYNC) and {result['config']['readers']} readers through nginx, `./start.sh pg-switchover` stopped the primary
(fast shutdown, through supervisord), fenced it and promoted the standby.

| figure | value |
|---|---|
| `./start.sh pg-switchover` (sync check, stop primary, fence, promote) | {f['switchover_s']:.1f} s |
| **pause seen by clients**: longest gap between two SYNC writes answered `applied`, across the switchover | **{f['sync_gap_s']:.2f} s** |
| slowest SYNC write in flight during the switchover (median before it: {f['sync_normal_latency_ms']:.0f} ms) | {f['sync_max_latency_s']:.2f} s |
| longest gap between two applies in `kv_oplog` (`apply_time`: the consumer's clock when its batch attempt began) | {f['apply_pause_s']:.2f} s |
| seconds the availability probe (ASYNC put + get) failed | {t['unavailable_s']:.1f} s |
| writes acknowledged / failed / no answer | {t['acked']:,} / {t['failed']:,} / {t['unknown']:,} |
| **lost** (acknowledged, not applied) | **{t['lost']}** |
| **duplicated** (applied twice) | **{t['duplicated']}** |
| stale reads | {t['stale']} |

Checks: {"; ".join(f"{n}: {'ok' if c['ok'] else 'FAILED'}{' (' + c['detail'] + ')' if c['detail'] else ''}" for n, c in t['checks'].items())}.

What happens: ASYNC writes are acknowledged at the broker's confirm and never pause; the consumers' batch transaction
fails on the old primary (connection terminated), is retried with back-off (`KVMESH_RETRY_BACKOFF_MAX_MS`), and
HikariCP's new connections find the new primary (`targetServerType=primary`; the driver re-checks a host's role
after `hostRecheckSeconds`). A batch whose commit reached the old primary but whose answer did not is applied again
on the new one and recognised by its operation ids in `kv_oplog` (exactly once). SYNC writes wait for their apply,
so they see the pause. Nothing acknowledged is lost because a commit returns only once the standby has flushed it
(`synchronous_standby_names`), and a consumer acknowledges a message to the broker only after its commit returned.

Manual, said plainly: the old primary stays stopped and fenced (`RUN_DIR/postgres/FENCED`, it refuses to start);
making it a standby of the new primary again is an operator's job (README, "A PostgreSQL standby and a switchover":
`pg_rewind -R`, delete the fence, start it, name it in `synchronous_standby_names`; checked by hand once, not by this
test), and until then the new primary runs alone, without a synchronous standby. Switching back is not scripted.
There is no automatic failover: deciding that a primary is dead and promoting on its own is Patroni's or
CloudNativePG's job. `./start.sh pg-switchover` refuses when the standby is not streaming in sync (`--force`
overrides, and may lose commits that the standby had not received).

Regenerate: `scripts/pg-switchover-test.sh` (about {result['duration_min']:.0f} minutes with the stack's start; part of
`./test.sh`). Every number above is in `{result['json_path']}`.
{DOC_END}
"""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        text = ""
    if DOC_BEGIN in text and DOC_END in text:
        text = text[:text.index(DOC_BEGIN)] + body.rstrip("\n") + text[text.index(DOC_END) + len(DOC_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + body
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--json", default="")
    ap.add_argument("--doc", default="")
    ap.add_argument("--command", default="scripts/pg-switchover-test.sh")
    args = ap.parse_args()

    cfg = CONFIGS["quick"]
    stack = Stack(args.root, args.run_dir)
    standby_port = stack.servers_env.get("KVMESH_PG_STANDBY_PORT", "")
    if not standby_port:
        print("[pg-switchover] ERROR: the stack has no PostgreSQL standby (KVMESH_PG_STANDBY=1)", file=sys.stderr)
        return 2
    ctx = Ctx.new_run(cfg, stack, "pgsw")
    run_id, prefix, history, load = ctx.run_id, ctx.prefix, ctx.history, ctx.load
    verifier = Verifier(ctx)
    load_start = load_average()
    ph = Phase("pg-switchover", "PostgreSQL switchover: primary stopped, standby promoted", "stop",
               t_start=time.time())

    sync = subprocess.run([os.path.join(args.root, "scripts/servers.sh"), "pg-sync-state", stack.run_dir],
                          capture_output=True, text=True, timeout=30).stdout.strip()
    ph.check("standby streaming in sync before", "kvmesh_standby|streaming|sync|" in sync, sync)
    step(f"load: {cfg.writers} writers x {cfg.write_rate:.0f}/s, {cfg.readers} readers x {cfg.read_rate:.0f}/s on "
         f"{cfg.keys} keys through nginx :{stack.http_port}; primary :{stack.pg['port']}, standby :{standby_port}")
    load.start()
    figures: dict = {}
    try:
        ctx.sleep(cfg.warmup_s + 5)
        step("switchover: ./start.sh pg-switchover")
        ph.t_inject = time.time()
        res = subprocess.run([os.path.join(args.root, "start.sh"), "pg-switchover"], capture_output=True, text=True,
                             timeout=120, env=stack.env)
        figures["switchover_s"] = round(time.time() - ph.t_inject, 2)
        out = (res.stdout + res.stderr).strip()
        print("\n".join("    " + line for line in out.splitlines()), flush=True)
        ph.check("switchover command", res.returncode == 0, f"rc {res.returncode} in {figures['switchover_s']} s")
        old_port, stack.pg["port"] = stack.pg["port"], standby_port   # from now on every check reads the new primary
        in_recovery = stack.psql("select pg_is_in_recovery()")[0][0]
        ph.check("new primary takes writes", in_recovery == "f", f"pg_is_in_recovery() = {in_recovery}")
        old_fenced = os.path.exists(os.path.join(stack.run_dir, "postgres", "FENCED"))
        old_pid = _read_pid_file(os.path.join(stack.run_dir, "postgres", "data", "postmaster.pid"))
        old_down = not pid_alive(old_pid) and not port_open(int(old_port))
        ph.check("old primary stopped and fenced", old_down and old_fenced,
                 f"postmaster {'alive' if pid_alive(old_pid) else 'gone'}, port {old_port} "
                 f"{'closed' if not port_open(int(old_port)) else 'OPEN'}, fenced {old_fenced}")

        def applied_after() -> bool:
            return stack.psql(f"select count(*) from kv_oplog where left(key, {len(prefix)}) = '{prefix}' "
                              f"and apply_time > to_timestamp({ph.t_inject})")[0][0] != "0"
        resumed = wait_until(applied_after, RESUME_GOAL_S, 0.2)
        ph.check("consumers resumed on the new primary by themselves", resumed,
                 f"within {RESUME_GOAL_S:.0f} s" if resumed else f"nothing applied {RESUME_GOAL_S:.0f} s after")
        ph.recovered, ph.recovery_s = resumed, round(time.time() - ph.t_inject, 1) if resumed else None
        ctx.sleep(cfg.post_s + 4)
    finally:
        ph.t_end = time.time()
        load.stop()

    step("drain and verification against the new primary")
    drained, drain_s, missing = verifier.drain(cfg.drain_s)
    ph.check("queues empty, nothing dead-lettered", *stack.wait_ops_queues_empty())
    res = verifier.verify(ph, ph.t_start, ph.t_end)
    gap, _, after = apply_pause(verifier, ph.t_inject)
    figures["apply_pause_s"] = round(gap, 2)
    figures["first_apply_after_s"] = round(max(0.0, after - ph.t_inject), 2)
    writes, _, _ = history.snapshot()
    sync_done = sorted(w.t_done for w in writes if w.mode == "SYNC" and w.status == "applied")
    figures["sync_gap_s"] = round(max([b - a for a, b in zip(sync_done, sync_done[1:])
                                       if b >= ph.t_inject and a <= ph.t_inject + 60] or [0.0]), 2)
    spanning = [w.t_done - w.t_send for w in writes if w.mode == "SYNC" and w.outcome == "acked"
                and w.t_send <= ph.t_inject + figures["switchover_s"] and w.t_done >= ph.t_inject]
    figures["sync_max_latency_s"] = round(max(spanning or [0.0]), 2)
    figures["sync_normal_latency_ms"] = round(1000 * statistics.median(
        [w.t_done - w.t_send for w in writes if w.mode == "SYNC" and w.outcome == "acked" and w.t_done < ph.t_inject]
        or [0.0]), 1)
    pause = max(gap, figures["sync_gap_s"])
    ph.check(f"pause under {RESUME_GOAL_S:.0f} s", pause < RESUME_GOAL_S, f"{pause:.2f} s")
    total = {"id": ph.id, "title": ph.title, "recovered": ph.recovered, "recovery_s": None, "drained": drained,
             "drain_s": drain_s, "checks": ph.checks, "notes": ph.notes, **res}
    if not drained:
        total["problems"].insert(0, f"not drained within {drain_s:.0f}s: {missing} acknowledged writes not in kv_oplog")
    total["failures"] = verdict(total)
    total["ok"] = not total["failures"]
    result = {"command": args.command, "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(T0)),
              "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "duration_min": (time.time() - T0) / 60 + 1.5, "machine": machine(), "commit": git_commit(args.root),
              "load_average": [load_start, load_average()], "config": cfg.__dict__, "run_id": run_id,
              "figures": figures, "total": total, "ok": total["ok"],
              "json_path": os.path.relpath(args.json, args.root) if args.json else ""}
    step(f"{'PASSED' if result['ok'] else 'FAILED: ' + '; '.join(total['failures'])}: acked {res['acked']}, failed "
         f"{res['failed']}, unknown {res['unknown']}, lost {res['lost']}, duplicated {res['duplicated']}, stale "
         f"{res['stale']}; switchover {figures['switchover_s']} s, SYNC answer gap {figures['sync_gap_s']} s, slowest SYNC "
         f"{figures['sync_max_latency_s']} s, apply gap {figures['apply_pause_s']} s, "
         f"probe unavailable {res['unavailable_s']} s; drained in {drain_s} s")
    for text in total["problems"][:8]:
        print(f"[pg-switchover]     {text}", flush=True)
    if args.json:
        write_json(args.json, result)
        step(f"results: {args.json}")
    if args.doc:
        write_doc_section(args.doc, result)
        step(f"report: {args.doc}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
