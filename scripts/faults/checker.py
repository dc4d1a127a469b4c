#!/usr/bin/env python3
"""kvmesh's fault suite: load through nginx, one fault at a time, a drain and a verification after each.

Run by scripts/faults.sh, which starts the stack in a private run folder and stops it afterwards:

  checker.py --mode quick|full --root REPO --run-dir RUN [--only kill-replica,...] [--json FILE] [--doc FILE]

Exits 0 when every verification passed, 1 when any failed, 2 on a usage or set-up error.
Python 3 standard library only; psql and the stack's own scripts are the only tools it calls.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from context import CONFIGS, Ctx, Phase  # noqa: E402
from faults import schedule  # noqa: E402
from report import git_commit, machine, text_table, verdict, write_doc, write_json  # noqa: E402
from stack import Stack, wait_until  # noqa: E402
from verify import Verifier  # noqa: E402

T0 = time.time()


def load_average() -> float:
    """1-minute load average: other builds and stacks share the machine, and it shows in every number."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return -1.0


LOAD_AT_START = load_average()


def step(msg: str) -> None:
    print(f"[faults +{time.time() - T0:.0f}s] {msg}", flush=True)


def make_whole(ctx: Ctx, ph: Phase) -> None:
    """Before the next phase: every part healthy (./start.sh status); restarts what is not, and says so."""
    if wait_until(lambda: ctx.stack.status()[0], 20, 1.0):
        return
    _, states = ctx.stack.status()
    bad = [p for p, s in states.items() if s not in ("healthy", "up")]
    ph.note(f"before the next phase the stack is not healthy: {', '.join(f'{p} {states[p]}' for p in bad)}; "
            "restarting those parts")
    for part in bad:
        ph.note(f"  {ctx.stack.repair(part)}")
    if not wait_until(lambda: ctx.stack.status()[0], 90, 2.0):
        ph.note("the stack is still not healthy; continuing anyway")


def summarize(ph: Phase, res: dict, drained: bool, drain_s: float, missing: int) -> dict:
    p = {"id": ph.id, "title": ph.title, "kind": ph.kind, "t_start": ph.t_start, "t_inject": ph.t_inject,
         "t_end": ph.t_end, "recovered": ph.recovered, "recovery_s": ph.recovery_s, "repair": ph.repair,
         "drained": drained, "drain_s": drain_s, "checks": ph.checks, "notes": ph.notes, "figures": ph.figures,
         **res}
    if not drained:
        p["problems"].insert(0, f"not drained within {drain_s:.0f}s: {missing} acknowledged writes not in kv_oplog")
    p["failures"] = verdict(p)
    p["ok"] = not p["failures"]
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(CONFIGS), default="quick")
    ap.add_argument("--root", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--only", default="", help="comma-separated fault ids (development)")
    ap.add_argument("--json", default="")
    ap.add_argument("--doc", default="")
    ap.add_argument("--command", default="")
    args = ap.parse_args()

    cfg = CONFIGS[args.mode]
    stack = Stack(args.root, args.run_dir)
    ctx = Ctx.new_run(cfg, stack, "fx")
    run_id, prefix, load = ctx.run_id, ctx.prefix, ctx.load
    verifier = Verifier(ctx)
    faults = schedule(args.mode, [f for f in args.only.split(",") if f])
    step(f"{args.mode} mode: {len(faults)} faults ({', '.join(f.id for f in faults)}); keys under {prefix}; "
         f"process control: {'supervisord' if stack.supervised() else 'pid files'}")
    step(f"load: {cfg.writers} writers x {cfg.write_rate:.0f}/s, {cfg.readers} readers x {cfg.read_rate:.0f}/s "
         f"on {cfg.keys} keys through nginx :{stack.http_port}")
    started = time.time()
    load.start()
    ctx.sleep(cfg.warmup_s)
    phases: list[dict] = []
    try:
        for i, fault in enumerate(faults, 1):
            ph = Phase(fault.id, fault.title, fault.kind, t_start=time.time())
            step(f"phase {i}/{len(faults)}: {fault.title}")
            ctx.sleep(cfg.pre_s)
            try:
                fault.run(ctx, ph)
            except Exception as e:  # noqa: BLE001 - a fault that cannot run is a finding, the suite goes on
                traceback.print_exc()
                ph.check("fault ran", False, f"{type(e).__name__}: {e}")
            ctx.sleep(cfg.post_s)
            ph.t_end = time.time()
            if not load.pause():
                ph.note("some load threads were still inside an operation after 40 s")
            drained, drain_s, missing = verifier.drain(cfg.drain_s)
            res = verifier.verify(ph, ph.t_start, ph.t_end)
            p = summarize(ph, res, drained, drain_s, missing)
            phases.append(p)
            step(f"  {'ok' if p['ok'] else 'FAILED: ' + '; '.join(p['failures'])} (acked {p['acked']}, failed "
                 f"{p['failed']}, unknown {p['unknown']}, lost {p['lost']}, duplicated {p['duplicated']}, stale "
                 f"{p['stale']} (+{p['stale_in_window']} within README's window), unavailable {p['unavailable_s']}s; "
                 f"drained in {drain_s}s)")
            if p["errors"]:
                print("[faults]     write errors: " + ", ".join(f"{n} x {e}" for e, n in list(p["errors"].items())[:4]),
                      flush=True)
            for text in p["problems"][:6]:
                print(f"[faults]     {text}", flush=True)
            make_whole(ctx, ph)
            load.resume()
    finally:
        load.stop()

    step("final drain and checks over the whole run")
    final = Phase("total", "all phases, after the final drain", "total", t_start=started)
    drained, drain_s, missing = verifier.drain(cfg.drain_s)
    final.check("queues empty, nothing dead-lettered", *stack.wait_ops_queues_empty())
    final.t_end = time.time()
    res = verifier.verify(final, started, final.t_end)
    res["unavailable_s"] = None
    total = summarize(final, res, drained, drain_s, missing)
    for key in ("acked", "failed", "unknown", "lost", "duplicated", "stale", "stale_in_window", "reads",
                "failed_applied", "unknown_applied", "sync_queued"):
        total[key] = res[key]   # the whole run, warm-up included
    total["failures"] = verdict(total)
    total["ok"] = not total["failures"]

    result = {"mode": args.mode, "command": args.command or f"scripts/faults.sh {args.mode}",
              "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
              "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "duration_min": (time.time() - T0) / 60, "machine": machine(), "commit": git_commit(args.root),
              "process_control": "supervisord" if stack.supervised() else "pid files",
              "load_average": [LOAD_AT_START, load_average()],
              "config": cfg.__dict__, "run_id": run_id, "phases": phases, "total": total,
              "ok": all(p["ok"] for p in phases) and total["ok"],
              "json_path": os.path.relpath(args.json, args.root) if args.json else ""}
    print()
    print(text_table(phases + [dict(total, title="total (whole run, after the final drain)")]))
    print()
    if args.json:
        write_json(args.json, result)
        step(f"results: {args.json}")
    if args.doc:
        write_doc(args.doc, result)
        step(f"report: {args.doc}")
    step("PASSED: every verification held" if result["ok"] else
         f"FAILED: {sum(not p['ok'] for p in phases)} of {len(phases)} phases"
         f"{'' if total['ok'] else ' and the final checks'} failed")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
