#!/usr/bin/env python3
"""Generates docs/benchmarks.md (and, with matplotlib, docs/img/bench-*.png) from ghz-bench's results:
results/latest-full.json if present, else results/latest-quick.json. Standard library, plus matplotlib when
it imports (ghz-bench/run.sh uses the venv that holds Envoy, where it is installed)."""

import argparse
import json
import os
import re
import sys

OWN_PROCESSES = ("kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2", "rabbitmq", "postgres", "redis")
SERVER_ORDER = ["nginx", "envoy", "kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2", "redis",
                "rabbitmq", "postgres", "ceiling nginx", "ceiling envoy", "edge ceiling nginx", "edge ceiling envoy",
                "edge ceiling backend", "etcd", "load generator"]


def n(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ms(v):
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def rng(e, key, digits=0):
    r = (e.get("range") or {}).get(key)
    if not r or r[0] == r[1]:
        return ""
    return f" ({n(r[0], digits)}–{n(r[1], digits)})"


def roles(m, top=3):
    """Cores per role (both kv-service replicas summed, both consumers summed), load generator left out."""
    acc = {}
    for proc, v in (m.get("cpu") or {}).items():
        if proc == "load generator":
            continue
        role = proc.rsplit("-", 1)[0] + " ×2" if proc[-2:] in ("-1", "-2") else proc
        acc[role] = acc.get(role, 0.0) + (v.get("cores") or 0.0)
    best = sorted(acc.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{r} {c:.2f}" for r, c in best if c >= 0.05) or "–"


def warm_text(s):
    """The method's warm-up sentence from a result's settings (older results: a fixed warm-up)."""
    if s.get("warm_tol"):
        return (f"warm-up runs of {s['warm']} s (discarded) until the last {s.get('warm_agree', 2)} agree within "
                f"{s['warm_tol'] * 100:.0f}% of the largest, at most {s['warm_max']} s per point (column *warm-up*: "
                "runs, ✓ converged, ✗ stopped at the limit)")
    return f"{s['warm']} s warm-up discarded"


def warm_cell(e):
    w = e.get("warmup")
    if not w:
        return "–"
    mark = {True: " ✓", False: " ✗", None: ""}[w.get("converged")]
    return f"{w['runs']}×{w['run_seconds']:g} s{mark}"


def role_us(m):
    """CPU µs per request per role (replicas summed, consumers summed), and the servers' total."""
    acc = {}
    for proc, v in (m.get("cpu") or {}).items():
        role = proc.rsplit("-", 1)[0] if proc[-2:] in ("-1", "-2") else proc
        acc[role] = acc.get(role, 0.0) + (v.get("us_per_req") or 0.0)
    acc["servers"] = sum(v for r, v in acc.items() if r != "load generator")
    return acc


def load(results_dir):
    for mode in ("full", "quick"):
        p = os.path.join(results_dir, f"latest-{mode}.json")
        if os.path.exists(p):
            with open(p) as f:
                return json.load(f), p
    sys.exit(f"no results/latest-full.json or latest-quick.json under {results_dir}: run ghz-bench/run.sh first")


def plots(doc, img_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as ex:  # the report stays complete without pictures
        print(f"[report] matplotlib unavailable ({ex}); no plots", file=sys.stderr)
        return []
    os.makedirs(img_dir, exist_ok=True)
    made = []
    sc = doc["scenarios"]

    # throughput–latency: open-loop points per target, p50 and p99 against achieved throughput
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99")):
        for base in ("REST GET", "REST PUT", "etcd JSON range", "etcd JSON put"):
            pts = [e for e in sc if e.get("base") == base and e.get("median")]
            pts.sort(key=lambda e: e["fraction"])
            xs = [e["median"]["throughput"] for e in pts]
            ys = [e["median"].get(key) for e in pts]
            if xs:
                ax.plot(xs, ys, marker="o", label=base, linestyle="--" if base.startswith("etcd") else "-")
        ax.set_xlabel("achieved throughput (req/s)")
        ax.set_ylabel(f"{title} latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"{title} latency at 25/50/75/90% of the closed-loop max", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"kvmesh vs etcd, open loop (vegeta), {doc['mode']} mode, {doc['started']}", fontsize=9)
    fig.tight_layout()
    p = os.path.join(img_dir, "bench-latency.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)

    # CPU time per request, per process, closed-loop scenarios: ceilings and the rest on their own linear scales
    rows_all = [e for e in sc if e["group"] in ("kvmesh", "etcd", "ceiling") and e.get("median") and e["median"].get("cpu")]
    procs = [p for p in SERVER_ORDER if any((e["median"]["cpu"].get(p) or {}).get("us_per_req") for e in rows_all)]
    colors = {p: plt.get_cmap("tab20")(i % 20) for i, p in enumerate(procs)}
    panels = [("ceilings alone", [e for e in rows_all if e["group"] == "ceiling"]),
              ("kvmesh and etcd", [e for e in rows_all if e["group"] != "ceiling"])]
    panels = [pn for pn in panels if pn[1]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 1.4 + 0.38 * len(rows_all)),
                             gridspec_kw={"height_ratios": [len(r) + 1 for _, r in panels]}, squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels):
        left = [0.0] * len(rows)
        for proc in procs:
            vals = [(e["median"]["cpu"].get(proc) or {}).get("us_per_req") or 0.0 for e in rows]
            ax.barh(range(len(rows)), vals, left=left, label=proc, color=colors[proc])
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([e["name"] for e in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"CPU time per request by process, {title} (µs, medians)", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("µs of CPU (utime+stime from /proc) per request")
    axes[-1, 0].legend(fontsize=7, ncol=3, loc="lower right")
    fig.tight_layout()
    p = os.path.join(img_dir, "bench-cpu.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)

    # a replica restarted under load: throughput per window against time since the restart command
    for e in (x for x in sc if x["group"] == "warm-up" and x.get("windows")):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.step([x["end_s"] for x in e["windows"]], [x["throughput"] for x in e["windows"]], where="post",
                marker="o", label="gRPC Get direct, restarted replica")
        ax.axhline(e["steady"] * 0.9, linestyle="--", color="grey", label="90 % of steady")
        ax.axvline(15, linestyle=":", color="red", label="goal: 15 s")
        ax.set_xlabel("seconds since ./start.sh restart kv-service-1")
        ax.set_ylabel("requests/s (5 s windows)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(img_dir, "bench-restart.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    return made


LEVER_ROLES = ["nginx", "envoy", "kv-service", "kv-consumer", "redis", "rabbitmq", "postgres"]


def levers_section(w, lev, out, title="Levers: CPU per request and throughput, one change at a time"):
    """The levers table: lever → CPU per request → throughput, write path and read path, all from one
    `ghz-bench/run.sh levers` invocation (results/latest-levers.json, or a named selection)."""
    w(f"## {title}")
    w("")
    if not lev:
        w("No levers run yet. `ghz-bench/run.sh levers` (about 40-50 minutes, on an otherwise idle machine) fills this "
          "section: a fresh stack per configuration, each with one lever changed against the defaults.")
        w("")
        return
    doc, src = lev
    s = doc["settings"]
    cfgs = doc["configs"]
    w(f"From `{os.path.relpath(src, os.path.dirname(os.path.dirname(out)))}` (`ghz-bench/run.sh levers`, started "
      f"{doc['started']}, {doc['seconds']:.0f} s of scenarios; kvmesh commit {doc['versions'].get('kvmesh commit', '?')}). "
      "For each configuration, in the order below, a fresh stack (new run folder, new data) is started with that "
      "configuration's environment (every other lever variable set empty, i.e. kvmesh's default) and Envoy runtime, "
      f"then REST GET, REST PUT, gRPC Get direct and gRPC Put direct run ({warm_text(s)}; "
      f"{s['runs']} run(s) of {s['dur']} s; medians), and the stack is stopped. CPU µs per request per process as in "
      "the CPU table above (replicas summed, consumers summed); *servers* is their sum (load generator excluded)."
      + (" The defaults run first and again last: the difference between those two rows is this invocation's noise, "
         "and a lever's delta smaller than it means nothing." if {"baseline", "baseline again"} <= {c["lever"] for c in cfgs} else "")
      + ("" if doc["mode"] == "levers" else f" **{doc['mode']} mode: a smoke test, not figures.**"))
    w("")
    loads = [c.get("loadavg_at_start") or ["?"] for c in cfgs]
    others = [e["median"].get("others_cores") for c in cfgs for e in c["scenarios"]
              if e.get("median") and e["median"].get("others_cores") is not None]
    if others:
        others.sort()
        w(f"Processes this invocation did not start used a median of {others[len(others) // 2]:.2f} cores (up to "
          f"{others[-1]:.2f}) while the scenarios ran; load averages when each configuration started: "
          + ", ".join(l[0] for l in loads) + ".")
        w("")
    w("| lever | what changes | settings |")
    w("| --- | --- | --- |")
    for c in cfgs:
        sets = [f"`{k}={v}`" for k, v in c["env"].items() if v] + [f"Envoy runtime `{k}={v}`" for k, v in c["runtime"].items()]
        w(f"| {c['lever']} | {c['what']} | {', '.join(sets) or 'defaults'} |")
    w("")
    base_cfg = next((c for c in cfgs if c["lever"] == "baseline"), cfgs[0])
    base = {e["name"]: e for e in base_cfg["scenarios"] if e.get("median")}
    vs = "vs baseline" if base_cfg["lever"] == "baseline" else f"vs {base_cfg['lever']}"

    def delta(v, b):
        if v is None or not b:
            return ""
        return f"{(v / b - 1) * 100:+.0f}%"

    for title, names in (("Write path", ["REST PUT", "gRPC Put direct"]), ("Read path", ["REST GET", "gRPC Get direct"])):
        names = [nm for nm in names if any(x["name"] == nm for c in cfgs for x in c["scenarios"])]
        if not names:
            continue   # a selection run with GHZ_BENCH_ONLY
        w(f"### {title}")
        w("")
        writes = title == "Write path"
        w(f"| scenario | lever | throughput /s (min–max) | {vs} | CPU µs/req, servers | {vs} | "
          + " | ".join(LEVER_ROLES) + " | load generator | others (cores) | warm-up |"
          + (" ops per message / per transaction |" if writes else ""))
        w("| --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in LEVER_ROLES) + " | --- | --- | --- |"
          + (" --- |" if writes else ""))
        for name in names:
            b = base.get(name)
            b_tput = b["median"]["throughput"] if b else None
            b_us = role_us(b["median"])["servers"] if b else None
            for c in cfgs:
                e = next((x for x in c["scenarios"] if x["name"] == name), None)
                if not e or not e.get("median"):
                    w(f"| {name} | {c['lever']} | **no result**{': ' + e.get('failure', '')[:100] if e else ''} | | | | "
                      + " | ".join("" for _ in LEVER_ROLES) + " | | | |")
                    continue
                m = e["median"]
                us = role_us(m)
                same = c is base_cfg
                cells = [n(us.get(r), 1 if (us.get(r) or 0) < 10 else 0) if (us.get(r) or 0) >= 0.5 else "" for r in LEVER_ROLES]
                w(f"| {name} | {c['lever']} | {n(m['throughput'])}{rng(e, 'throughput')} | "
                  f"{'' if same else delta(m['throughput'], b_tput)} | {n(us['servers'])} | "
                  f"{'' if same else delta(us['servers'], b_us)} | " + " | ".join(cells)
                  + f" | {n(us.get('load generator'))} | {ms(m.get('others_cores'))} | {warm_cell(e)} |"
                  + (f" {batch_cell(m)} |" if writes else ""))
        w("")
    mems = [(c["lever"], c.get("memory_end")) for c in cfgs if c.get("memory_end")]
    if mems:
        parts = [p for p in ("kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2", "rabbitmq", "postgres",
                             "envoy", "nginx", "redis") if any(p in m for _, m in mems)]
        w("### Memory at the end of each configuration")
        w("")
        w("Resident MB of each process tree (`VmRSS`) after that configuration's scenarios:")
        w("")
        w("| lever | " + " | ".join(parts) + " |")
        w("| --- | " + " | ".join("---" for _ in parts) + " |")
        for lever, m in mems:
            w(f"| {lever} | " + " | ".join(n(m[p]["rss_mb"]) if p in m else "" for p in parts) + " |")
        w("")


def batch_cell(m):
    """'ops per broker message / ops per PostgreSQL transaction' of a write scenario's median, or ''."""
    a, b = m.get("ops_per_message"), m.get("ops_per_transaction")
    if a is None and b is None:
        return ""
    return f"{'-' if a is None else f'{a:.1f}'} / {'-' if b is None else f'{b:.1f}'}"


def group_commit_section(w, sc, by):
    """How many writes shared a broker message and a PostgreSQL transaction in each kvmesh write scenario, and what
    one message and one transaction cost: the figures the write path's CPU per request follows from."""
    rows = [e for e in sc if e.get("group") == "kvmesh" and e.get("median") and e["median"].get("ops_per_message")]
    if not rows:
        return
    w("## Group commit: writes per broker message and per transaction")
    w("")
    w("Summed over the replicas' `kvmesh_publish_batch_ops` and the consumers' `kvmesh_consumer_batch_size` (their "
      "/metrics, read before and after each measured run; medians over the runs). A message's cost in RabbitMQ and a "
      "transaction's in PostgreSQL are the processes' cores ÷ messages (transactions) per second. Compare with the "
      "ceiling *rabbitmq quorum, 1 confirm in flight x 2*: the broker's CPU per message when each message is its own "
      "write-ahead-log write and fsync, the shape the replicas' lanes (one unconfirmed message each) give it.")
    w("")
    w("| scenario | requests /s | ops per message | messages /s | RabbitMQ µs per message | ops per transaction | "
      "transactions /s | PostgreSQL µs per transaction |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in rows:
        m = e["median"]
        runs = [r["batching"] for r in e["runs"] if r.get("batching")]
        msgs = sorted(r["messages_per_s"] for r in runs)[len(runs) // 2] if runs else None
        txs = sorted(r["transactions_per_s"] for r in runs)[len(runs) // 2] if runs else None
        cpu = m.get("cpu") or {}
        rmq = (cpu.get("rabbitmq") or {}).get("cores")
        pg = (cpu.get("postgres") or {}).get("cores")
        w(f"| {e['name']} | {n(m['throughput'])} | {m['ops_per_message']:.1f} | {n(msgs)} | "
          f"{n(rmq / msgs * 1e6) if rmq and msgs else ''} | "
          f"{'' if m.get('ops_per_transaction') is None else format(m['ops_per_transaction'], '.1f')} | {n(txs)} | "
          f"{n(pg / txs * 1e6) if pg and txs else ''} |")
    shape = by.get("rabbitmq quorum, 1 confirm in flight x 2")
    if shape and shape.get("median") and (shape["median"].get("cpu") or {}).get("rabbitmq"):
        sm = shape["median"]
        w("")
        w(f"Ceiling of the same shape: {n(sm['throughput'])} messages/s at "
          f"{n(sm['cpu']['rabbitmq']['us_per_req'])} µs of RabbitMQ CPU per message.")
    w("")


def load_levers(results_dir):
    p = os.path.join(results_dir, "latest-levers.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f), p


def load_lever_selections(results_dir):
    """Named lever selections (GHZ_BENCH_LEVERS=... GHZ_BENCH_LEVERS_AS=NAME ghz-bench/run.sh levers), by name."""
    out = []
    for fn in sorted(os.listdir(results_dir)):
        m = re.match(r"latest-levers-(.+)\.json$", fn)
        if m:
            p = os.path.join(results_dir, fn)
            with open(p) as f:
                out.append((m.group(1), (json.load(f), p)))
    return out


def report(doc, src, out, img_dir, levers=None):
    sc = doc["scenarios"]
    by = {e["name"]: e for e in sc}
    L = []
    w = L.append
    w("# kvmesh benchmarks")
    w("")
    w(f"Generated by `ghz-bench/report.py` from `{os.path.relpath(src, os.path.dirname(os.path.dirname(out)))}` "
      f"(`ghz-bench/run.sh {doc['mode']}`, started {doc['started']}, {doc['seconds']:.0f} s of scenarios). "
      "Do not edit by hand: run `ghz-bench/run.sh full` (or `ghz-bench/run.sh report` to regenerate from the last results).")
    w("")
    mach = doc["machine"]
    s = doc["settings"]
    w(f"**Machine:** {mach['nproc']} cores ({mach['cpu']}), {mach['memory']} memory, kernel {mach['kernel']}, "
      f"load average at start {' / '.join(mach['loadavg_at_start'])}. Everything — kvmesh (nginx, Envoy, 2 kv-service, "
      "2 kv-consumer, Redis, RabbitMQ, PostgreSQL), the ceilings, etcd and the load generators — runs on this one machine.")
    w("")
    busy = [e["median"].get("others_cores") for e in sc if e.get("median") and e["median"].get("others_cores") is not None]
    if busy:
        busy.sort()
        w(f"**Shared machine.** Other engineers' builds and stacks ran on the same 2 cores during this run: processes "
          f"this run did not start used a median of {busy[len(busy) // 2]:.2f} cores (range {busy[0]:.2f}–{busy[-1]:.2f}) "
          "while the scenarios ran (column *others* below). Absolute figures are therefore lower than on an idle machine; "
          "ratios taken within the same run are the figures to compare, and even they are only indicative.")
        w("")
    w(f"**Method:** {warm_text(s)}, then {s['runs']} run(s) of {s['dur']} s per point; medians, "
      f"with min–max over the runs in parentheses. {doc['concurrency']} connections (wrk -t2) or 64 concurrent "
      f"gRPC calls over 4 connections (ghz), {doc['value_bytes']}-byte values, reads over {doc['preloaded_keys']} "
      "preloaded keys, writes on a new key every request. CPU time per request = (utime+stime, plus cutime+cstime of "
      "reaped children, over each process tree from /proc) ÷ requests. *busiest* lists the server roles using the "
      "most cores during the run (the two kv-service replicas summed, likewise the two consumers; load generators "
      "excluded): the likely limit is the first one when it nears a core or when the machine (2 cores, column "
      "*machine busy*) is saturated, in which case every process is short of CPU and CPU per request decides.")
    w("")

    # ---- goals
    w("## Goals from DESIGN.md, this run")
    w("")
    w("*kvmesh's own* CPU per request is every kvmesh process (replicas, consumers, RabbitMQ, PostgreSQL, Redis) and "
      "excludes nginx, Envoy and the load generator, whose cost the mission prescribes or the benchmark adds; etcd's "
      "is its whole process. CPU µs per request from the CPU table below (medians of the measured runs).")
    w("")
    w("| goal | measured | ratio | met |")
    w("| --- | --- | --- | --- |")

    def own_us(name):
        e = by.get(name)
        if not e or not e.get("median") or not e["median"].get("cpu"):
            return None
        cpu = e["median"]["cpu"]
        return sum((cpu.get(p) or {}).get("us_per_req") or 0 for p in OWN_PROCESSES)

    def etcd_us(name):
        e = by.get(name)
        if not e or not e.get("median") or not e["median"].get("cpu"):
            return None
        return (e["median"]["cpu"].get("etcd") or {}).get("us_per_req")

    def tput(name):
        e = by.get(name)
        return e["median"]["throughput"] if e and e.get("median") else None

    for text, a, b, goal, kind in (
            ("kvmesh's own CPU per durable REST write / etcd's CPU per JSON put", "REST PUT", "etcd JSON put", 1.0, "cpu"),
            ("kvmesh's own CPU per gRPC Put direct / etcd's CPU per gRPC Put", "gRPC Put direct", "etcd gRPC Put", 1.5,
             "cpu"),
            ("REST PUT / etcd JSON put throughput", "REST PUT", "etcd JSON put", 0.5, "tput"),
            ("gRPC Put direct / etcd gRPC Put throughput (each cycles over 1,000 keys from a ghz data file)",
             "gRPC Put direct", "etcd gRPC Put", 0.8, "tput")):
        va, vb = (own_us(a), etcd_us(b)) if kind == "cpu" else (tput(a), tput(b))
        if not va or not vb:
            w(f"| {text} | no result | | |")
            continue
        ratio = va / vb
        met = ratio <= goal if kind == "cpu" else ratio >= goal
        unit = "µs" if kind == "cpu" else "/s"
        w(f"| {text} | {n(va)} vs {n(vb)} {unit} | {ratio:.2f}× (goal {'≤' if kind == 'cpu' else '≥'} {goal}×) | "
          f"{'yes' if met else '**no**'} |")
    lag_rate = doc["settings"]["lag_rate"]
    for title, key in ((f"write-visible lag p99 < 50 ms at {lag_rate:,} writes/s offered", "write-visible lag"),
                       ("write-visible lag p99 < 50 ms at half the REST PUT maximum", "write-visible lag @50% PUT max")):
        e = by.get(key)
        if e and e.get("median"):
            m = e["median"]
            ok = m.get("p99_ms") is not None and m["p99_ms"] < 50 and not m.get("errors")
            applied = ""
            if m.get("apply_lag_p99_at_most_ms") is not None or m.get("apply_lag_within_50ms") is not None:
                # the consumers' own histogram of the same writes: acceptance → commit, before the event's way back
                applied = (f"; the consumers committed 99 % of them within {n(m.get('apply_lag_p99_at_most_ms'))} ms "
                           f"of acceptance and {100 * (m.get('apply_lag_within_50ms') or 0):.1f} % within 50 ms")
            w(f"| {title} | p50 {ms(m.get('p50_ms'))} ms, p99 {ms(m.get('p99_ms'))} ms at {n(m['throughput'])} writes/s "
              f"acknowledged ({n(m.get('errors'))} failed or not seen within 5 s){applied} | | "
              f"{'yes' if ok else '**no**'}{'' if doc['mode'] == 'full' else ' (quick mode)'} |")
    puts = [e for e in sc if e.get("backlog_after")]
    if puts:
        worst = max(puts, key=lambda e: e["backlog_after"]["messages"])
        b = worst["backlog_after"]
        w(f"| applier never the bottleneck | largest backlog left when a write scenario ended: {n(b['messages'])} "
          f"messages after *{worst['name']}*, drained in {b['drained_s']} s | | "
          f"{'yes' if b['messages'] == 0 or b['drained_s'] <= 5 else '**no**'} |")
    w("")

    group_commit_section(w, sc, by)

    idle = by.get("idle (no load)")
    if idle and idle.get("median") and idle["median"].get("cpu"):
        cpu = idle["median"]["cpu"]
        w("## Idle baseline")
        w("")
        w("Cores each process uses with the stack up and no requests (a cost every scenario below also pays):")
        w("")
        w("| " + " | ".join(p for p in SERVER_ORDER if p in cpu and p != "load generator") + " | others |")
        w("| " + " | ".join("---" for p in SERVER_ORDER if p in cpu and p != "load generator") + " | --- |")
        w("| " + " | ".join(f"{cpu[p]['cores']:.3f}" for p in SERVER_ORDER if p in cpu and p != "load generator")
          + f" | {ms(idle['median'].get('others_cores'))} |")
        w("")

    # ---- closed loop
    w("## Closed loop: throughput and latency (medians)")
    w("")
    w("| scenario | group | throughput /s (min–max) | p50 ms | p99 ms | p99.9 ms | errors | busiest (cores) | machine busy | others | warm-up |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in sc:
        if e["group"] in ("open loop", "baseline", "warm-up"):
            continue
        m = e.get("median")
        if not m:
            w(f"| {e['name']} | {e['group']} | **no result**: {e.get('failure', '')[:120]} | | | | | | | | |")
            continue
        unit = " rows" if "upsert" in e["name"] else ""
        w(f"| {e['name']} | {e['group']} | {n(m['throughput'])}{unit}{rng(e, 'throughput')} | {ms(m.get('p50_ms'))} | "
          f"{ms(m.get('p99_ms'))} | {ms(m.get('p999_ms'))} | {n(m.get('errors'))} | {roles(m)} | "
          f"{ms(m.get('machine_busy_cores'))} | {ms(m.get('others_cores'))} | {warm_cell(e)} |")
    w("")
    w("## Ratios (same run)")
    w("")
    w("| ratio | value | goal |")
    w("| --- | --- | --- |")
    for r in doc["ratios"]:
        w(f"| {r['name']} | {r['value']:.2f}× | {'' if r['goal'] is None else ('≥ ' + str(r['goal']) + '× ' + ('met' if r['met'] else '**not met**'))} |")
    w("")

    for e in (x for x in sc if x["group"] == "warm-up"):
        w("## A replica restarted under load")
        w("")
        if not e.get("windows"):
            w(f"No result: {e.get('failure', '')[:200]}")
            w("")
            continue
        t90 = e.get("seconds_to_90pct")
        w(f"{e.get('note', '')}. Steady throughput {n(e['steady'])}/s; 90 % of it reached "
          + (f"**{t90:g} s** after the restart command (goal ≤ 15 s)." if t90 is not None
             else f"**not within {e['windows'][-1]['end_s']:g} s** of the restart command (goal ≤ 15 s).")
          + {True: " The restarted process mapped the release's AOT cache (the training run had been restarted and the "
                   "cache assembled first).",
             False: " The release's AOT cache was not there yet: the restarted process started without it.",
             None: ""}[e.get("aot_cache")])
        w("")
        # drawn by plots() below (with matplotlib)
        w(f"![throughput of the restarted replica over time]"
          f"({os.path.relpath(os.path.join(img_dir, 'bench-restart.png'), os.path.dirname(out))})")
        w("")
        w("| window (s after the command) | throughput /s | of steady |")
        w("| --- | --- | --- |")
        for x in e["windows"]:
            w(f"| {x['start_s']:g}–{x['end_s']:g} | {n(x['throughput'])} | {x['throughput'] / e['steady'] * 100:.0f}% |")
        w("")

    mem = doc.get("memory_end")
    if mem:
        w("## Memory at the end of the run")
        w("")
        w("Resident memory of each process tree after every scenario above (`VmRSS`, summed over a tree: PostgreSQL's "
          "backends each count the shared buffers they touched again; nginx is its master and workers):")
        w("")
        w("| process | resident MB | processes |")
        w("| --- | --- | --- |")
        for name, v in mem.items():
            w(f"| {name} | {v['rss_mb']:,.0f} | {v['processes']} |")
        w("")

    # ---- open loop
    w("## Open loop: latency at fixed offered loads")
    w("")
    if doc.get("open_loop_after_closed"):
        w("vegeta at 25/50/75/90% of the closed-loop median of the same target, run right after that closed-loop point "
          "so both see the servers in the same state (offered rate is fixed, so queueing shows up as latency instead "
          "of being hidden by a closed loop).")
    else:
        w("vegeta at 25/50/75/90% of the closed-loop median measured earlier in the same run (offered rate is fixed, "
          "so queueing shows up as latency instead of being hidden by a closed loop). **In this run every open-loop "
          "series ran after all the other scenarios.** The etcd JSON range series is therefore not comparable: it "
          "was offered fractions of a maximum measured on a fresh etcd, after about a million writes had made every "
          "etcd 3.4 read several times dearer (see *Notes*: the write-back buffer copy), so even 25% exceeded what "
          "etcd could then serve. Later runs measure each series right after its closed-loop point.")
    w("")
    w("| target | % of max | offered /s | achieved /s | p50 ms | p99 ms | p99.9 ms | errors | busiest (cores) |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in sc:
        if e["group"] != "open loop":
            continue
        m = e.get("median")
        if not m:
            w(f"| {e['base']} | {int(e['fraction'] * 100)} | {n(e['offered'])} | **no result** | | | | | |")
            continue
        w(f"| {e['base']} | {int(e['fraction'] * 100)} | {n(e['offered'])} | {n(m['throughput'])} | {ms(m.get('p50_ms'))} | "
          f"{ms(m.get('p99_ms'))} | {ms(m.get('p999_ms'))} | {n(m.get('errors'))} | "
          f"{roles(m)} |")
    w("")
    imgs = plots(doc, img_dir)
    rel = lambda p: os.path.relpath(p, os.path.dirname(out))
    for p in imgs:
        if p.endswith("latency.png"):
            w(f"![throughput–latency]({rel(p)})")
            w("")

    # ---- CPU per request
    w("## CPU time per request, by process (µs, medians)")
    w("")
    rows = [e for e in sc if e["group"] not in ("open loop", "baseline") and e.get("median") and e["median"].get("cpu")]
    procs = [p for p in SERVER_ORDER if any((e["median"]["cpu"].get(p) or {}).get("us_per_req") for e in rows)]
    w("| scenario | " + " | ".join(procs) + " |")
    w("| --- | " + " | ".join("---" for _ in procs) + " |")
    for e in rows:
        cells = []
        for p in procs:
            v = (e["median"]["cpu"].get(p) or {}).get("us_per_req")
            cells.append("" if not v or v < 0.5 else n(v, 1 if v < 10 else 0))
        w(f"| {e['name']} | " + " | ".join(cells) + " |")
    w("")
    for p in imgs:
        if p.endswith("cpu.png"):
            w(f"![CPU per request]({rel(p)})")
            w("")

    levers_section(w, levers, out)
    for name, sel in load_lever_selections(os.path.dirname(src)):
        levers_section(w, sel, out, title=f"Levers, selection `{name}`: "
                       + ", ".join(c["lever"] for c in sel[0]["configs"]))

    scale_section(w, load_scale(os.path.dirname(src)), out)

    # ---- versions and commands
    w("## Versions")
    w("")
    for k, v in doc["versions"].items():
        w(f"- {k}: {v}")
    w("")
    w("## Exact commands")
    w("")
    w("Ports are the free ones picked for that run; `wrk/*.lua` get `wrk/common.lua` prepended.")
    w("")
    for e in sc:
        if e.get("runs"):
            w(f"- **{e['name']}**: `{e['runs'][0]['command']}`" + (f" — {e['note']}" if e.get("note") else ""))
    w("")
    w("## Notes and limits")
    w("")
    for line in NOTES:
        w(f"- {line}")
    if not doc.get("etcd_grpc_put_keys"):
        w("- **Caveat for this run:** its etcd gRPC Put scenario rewrote the 1,000 keys that the etcd range scenarios "
          "read (each about 500 times; etcd keeps every revision until compaction, and this etcd never compacts). The "
          "open-loop etcd JSON range points ran after it and are suspect: etcd needed about 1 ms of CPU per range "
          "there against 0.2 ms in the closed-loop range measured before the rewrites, and could not follow even 25% "
          "of the closed-loop rate. The closed-loop etcd figures were measured before. Later runs put to other keys.")
    if doc.get("etcd_reflection"):
        w(f"- etcd gRPC reflection, checked in this run: ghz with no proto against etcd answered "
          f"“{doc['etcd_reflection']['message']}” (exit {doc['etcd_reflection']['ghz_without_proto_exit']}).")
    w("")
    with open(out, "w") as f:
        f.write("\n".join(L))
    print(f"[report] wrote {out}" + (f" and {', '.join(imgs)}" if imgs else ""))


NOTES = [
    "All processes share 2 cores: the load generators (wrk, ghz, vegeta, PerfTest, pgbench, lagprobe) take CPU from "
    "the servers they measure (see the *load generator* column of the CPU table), and other people's work on the "
    "machine takes more (*others*). Ceilings measured alone are upper bounds for the full stack.",
    "ghz is the version the Go module proxy serves here for `github.com/bojand/ghz/cmd/ghz@latest` (v0.93.0). It asks "
    "for gRPC reflection v1alpha, while kv-service registers v1 only (`ProtoReflectionServiceV1`), so ghz reads "
    "kvmesh's descriptor set (`proto/target/descriptor/kvmesh.pb`, `--protoset`) instead of reflection.",
    "vegeta: `go install github.com/tsenart/vegeta@latest` is refused by the Go proxy here (403); the module's "
    "current path `github.com/tsenart/vegeta/v12` installs.",
    "etcd is Debian's 3.4.23 (`etcd-server`, `etcd-client`), single node, own data dir and ports on loopback, default "
    "settings (fsync on every commit). It serves no gRPC reflection, and its full rpc.proto imports gogoproto and "
    "google/api annotations not installed here, so ghz uses `ghz-bench/proto/etcd_kv.proto`, a wire-compatible subset "
    "(KV.Range and KV.Put with etcd's field numbers). The gRPC put cycles over 1,000 keys (ghz data array), the JSON "
    "put writes a new key each time; both are one new revision per request.",
    "`etcdctl check perf` always runs 60 s at a fixed offered load (`--load s`, 150 writes/s), so it reports whether "
    "etcd keeps up with that load, not a maximum. Quick mode runs it while the kvmesh stack starts.",
    "RabbitMQ PerfTest comes from Maven Central (`com.rabbitmq:perf-test` 2.22.1 and its dependencies through "
    "`ghz-bench/perftest/pom.xml`; 2.23.0 is not served): 1 producer, 1 consumer, quorum queue, persistent 256-byte "
    "messages, up to 1,000 unconfirmed.",
    "pgbench: 8 clients, prepared, one 100-row `INSERT … ON CONFLICT DO UPDATE` per transaction on a bench table "
    "(rows/s = tps × 100); pgbench prints no percentiles. redis-benchmark prints p50/p99 but no p99.9, and runs a "
    "fixed number of requests rather than a duration.",
    "write-visible lag (`ghz-bench/lagprobe -watch`, Go standard library): open loop at a fixed rate (3,000 writes/s "
    "in full mode, 500 in quick, and half the REST PUT maximum), PUT /api through nginx; every 10th write in full mode "
    "(every write in quick) goes to a prefix that one Watch stream (`GET /kv/watch`, through nginx and Envoy) follows, "
    "and its lag is its PUT event's arrival minus the PUT's acknowledgement (0 when the event came first). The applier "
    "publishes a batch's events only after PostgreSQL committed it and Redis holds it, so this bounds from above when "
    "a GET on any replica sees the write, without the polling GETs (1 ms apart) that the probe used until 2026-12-07 "
    "and that loaded the stack they measured.",
    "Open loop uses vegeta (coordinated-omission free: requests leave at the fixed rate whatever the responses do) "
    "rather than wrk2, which has no Debian package.",
    "etcd 3.4 reads get dearer after heavy writes, and stay so while no more writes come: every Range (serializable "
    "or not) copies the backend's read buffer (`backend.ConcurrentReadTx` → `bucketBuffer.Copy`, which allocates "
    "`len(buf)`, not the used part), and that buffer grows to the most writes committed in one batch (100 ms) and "
    "never shrinks until a commit without writes to that bucket. Measured on 2026-11-25 with a lone etcd on this "
    "machine: after 35 s of JSON puts and 35 s of gRPC puts, a range allocated 140 kB (112 kB of it the copy) against "
    "54 kB after one lease grant (a commit with no key writes), and cost 323 µs of CPU against 199 µs; heap profiles "
    "(`--enable-pprof`) show the copy and the garbage collection it causes as the largest costs of a range. etcd "
    "also spends more CPU per request in open loop than in closed loop (each request arrives alone: its own wake-ups, "
    "syscalls, ReadIndex round: 460–570 µs against 250–270 µs in the same state). The etcd figures here are "
    "therefore for the read path of a freshly written etcd (closed loop right after the preload; the open-loop range "
    "series right after it), which is etcd's favourable case. It is not vegeta: at 2,000/s against a fresh etcd "
    "vegeta's requests (JSON targets, base64-decoded bodies, kept-alive connections, 10 s timeout) were all answered "
    "200 at p50 ≈ 1 ms.",
]


def load_scale(results_dir):
    p = os.path.join(results_dir, "latest-scale.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f), p


def scale_section(w, sc, out):
    """A large store (`ghz-bench/run.sh scale`): the load rate, the scenarios on 1,000 keys and on the large store,
    sizes, and kv_oplog's rows under sustained writes."""
    w("## A large store: a million keys")
    w("")
    if not sc:
        w("Not run yet: `ghz-bench/run.sh scale` (about 35 minutes) fills this section.")
        w("")
        return
    doc, src = sc
    keys = doc["keys"]
    ld = doc["load"]
    w(f"From `{os.path.relpath(src, os.path.dirname(os.path.dirname(out)))}` (`ghz-bench/run.sh {doc['mode']}`, started "
      f"{doc['started']}, {doc['seconds']:.0f} s; kvmesh commit {doc['versions'].get('kvmesh commit', '?')}; "
      f"{doc['machine']['nproc']} cores). The stack ran with an operation-log retention of "
      f"{doc['sustained_put']['retention_s']} s (`KVMESH_OPLOG_RETENTION_SECONDS`) so that retention is exercised "
      "within the run." + ("" if doc["mode"] == "scale" else f" **{doc['mode']} mode: a smoke test, not figures.**"))
    w("")
    s = ld.get("summary") or {}
    w(f"**Load.** `{ld['command']}`: {n(s.get('written'))} of {n(keys)} keys ({ld['value_bytes']}-byte values) "
      f"acknowledged durable (broker-confirmed) in {s.get('elapsedSeconds', '?')} s: **{n(ld.get('rate_acked'))} "
      f"keys/s** (goal ≥ 10,000); all applied to PostgreSQL {ld['applied_seconds']} s after the start "
      f"({n(ld['rate_applied'])} keys/s); {n(s.get('failed'))} failed."
      + (f" The scenarios on the large store began {doc['quiet_after_load']['seconds']:.0f} s later, once the load's "
         "log rows were past the retention and deleted and PostgreSQL was idle."
         if doc.get("quiet_after_load") else
         " The scenarios on the large store began right after the load, while PostgreSQL was still deleting its log "
         "rows (this run predates the wait for a quiet store)."))
    w("")
    w("*keys stored* is the keys loaded for the phase: each REST PUT point adds keys of its own (see the row counts "
      "below). *Cache hit rate* is the share of Gets the replicas answered from Redis (`kvmesh_cache_reads_total`); "
      "the applier writes every key it applies into the cache and Redis has no `maxmemory` here, so it holds every "
      "key. *PostgreSQL µs/req* (its CPU per request: a cache hit costs it nothing) shows work other than the "
      "scenario's running meanwhile (deleting the load's "
      "log rows past their retention, autovacuum).")
    w("")
    w("| scenario | keys stored | throughput /s (min–max) | p50 ms | p99 ms | cache hit rate | PostgreSQL µs/req | "
      "vs 1,000 keys |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    by = {e["name"]: e for e in doc["scenarios"]}
    small = f"{1000:,} keys"
    for e in doc["scenarios"]:
        m = e.get("median")
        if not m:
            w(f"| {e['name']} | {n(e.get('keys'))} | **no result** | | | | | |")
            continue
        kind = e["name"].split(" · ")[0]
        ref = by.get(f"{kind} · {small}")
        vs = ""
        if ref and ref is not e and ref.get("median"):
            vs = f"{(m['throughput'] / ref['median']['throughput'] - 1) * 100:+.0f}% throughput, p99 " \
                 f"{(m['p99_ms'] / ref['median']['p99_ms'] - 1) * 100:+.0f}%"
        hr = e.get("cache_hit_rate")
        pg = (m.get("cpu") or {}).get("postgres", {}).get("us_per_req")
        w(f"| {e['name']} | {n(e.get('keys'))} | {n(m['throughput'])}{rng(e, 'throughput')} | {ms(m.get('p50_ms'))} | "
          f"{ms(m.get('p99_ms'))} | {'' if hr is None else f'{hr * 100:.1f} %'} | {n(pg)} | {vs} |")
    w("")
    w("Sizes after each phase (PostgreSQL: exact rows; table and index MB on disk; Redis: used memory and keys):")
    w("")
    tabs = sorted({t for ph in ("small", "large", "large_after") for t in (doc.get(ph) or {}).get("postgres", {})})
    w("| after | " + " | ".join(f"{t} rows / table MB / index MB" for t in tabs) + " | Redis MB | Redis keys |")
    w("| --- | " + " | ".join("---" for _ in tabs) + " | --- | --- |")
    for ph, label in (("small", "1,000 keys"), ("large", "the load"), ("large_after", "the scenarios on the large store")):
        d = doc.get(ph)
        if not d:
            continue
        cells = []
        for t in tabs:
            x = d["postgres"].get(t)
            cells.append(f"{n(x['rows'])} / {x['table_mb']:,.1f} / {x['indexes_mb']:,.1f}" if x else "")
        w(f"| {label} | " + " | ".join(cells) + f" | {d.get('redis_used_mb')} | {n(d.get('redis_keys'))} |")
    w("")
    sp = doc["sustained_put"]
    samples = sp.get("samples") or []
    w(f"**Operation log under sustained writes.** REST PUT at its maximum for {sp['seconds']} s "
      f"({n(sp.get('put_rate'))} writes/s, {n(sp.get('errors'))} errors), retention {sp['retention_s']} s: kv_oplog "
      f"peaked at {n(sp.get('max_rows_after_retention'))} rows once the retention had passed, against a bound of "
      f"{n(sp.get('bound_rows'))} (write rate × (retention + 10 s for the sweeps)): "
      f"{'**bounded**' if sp.get('bounded') else '**not bounded**'}. Rows over time (s: rows): "
      + ", ".join(f"{x['s']:.0f}: {n(x['oplog_rows'])}" for x in samples[:: max(1, len(samples) // 20)]) + ".")
    w("")
    ls = ld.get("oplog_samples") or []
    if ls:
        w("kv_oplog during the load (s: rows): " + ", ".join(f"{x['s']:.0f}: {n(x['oplog_rows'])}" for x in ls) + ".")
        w("")
    mem = doc.get("memory_end")
    if mem:
        w("Resident MB at the end: " + ", ".join(f"{k} {n(v['rss_mb'])}" for k, v in mem.items()) + ".")
        w("")


def headline(doc, readme):
    """Rewrites the block between the headline markers of ghz-bench/README.md from the same results."""
    if not os.path.exists(readme):
        return
    with open(readme) as f:
        text = f.read()
    a, b = "<!-- headline:start -->", "<!-- headline:end -->"
    if a not in text or b not in text:
        return
    by = {e["name"]: e for e in doc["scenarios"]}
    t = lambda name: n(by[name]["median"]["throughput"]) if by.get(name) and by[name].get("median") else "–"
    p99 = lambda name: ms(by[name]["median"].get("p99_ms")) if by.get(name) and by[name].get("median") else "–"
    L = [a, "", f"From `ghz-bench/run.sh {doc['mode']}` on {doc['started'][:10]} ({doc['machine']['nproc']} cores, "
         "shared with other work while it ran: see *others* in the report). Throughput in requests/s, median of the runs.", "",
         "| scenario | kvmesh | p99 ms | compared with | ratio (goal) |", "| --- | --- | --- | --- | --- |"]
    rat = {r["name"]: r for r in doc["ratios"]}
    for label, mine, other, rname in (
            ("REST GET (nginx → Envoy → replica → Redis)", "REST GET", "etcd JSON range", "REST GET / etcd JSON range"),
            ("REST PUT (acknowledged after the broker's confirm)", "REST PUT", "etcd JSON put", "REST PUT / etcd JSON put"),
            ("gRPC Get direct to one replica", "gRPC Get direct", "redis GET", "gRPC Get direct / Redis GET")):
        r = rat.get(rname)
        ratio = "–" if not r else "{:.2f}× (≥ {}×)".format(r["value"], r["goal"])
        L.append(f"| {label} | {t(mine)} | {p99(mine)} | {other} {t(other)} | {ratio} |")
    lag = by.get("write-visible lag")
    if lag and lag.get("median"):
        L.append(f"| write-visible lag at {doc['settings']['lag_rate']:,} writes/s offered | p50 {ms(lag['median'].get('p50_ms'))} ms | "
                 f"{p99('write-visible lag')} | goal p99 < 50 ms | |")
    L += ["", b]
    text = text[:text.index(a)] + "\n".join(L) + text[text.index(b) + len(b):]
    with open(readme, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--img", required=True)
    a = ap.parse_args()
    doc, src = load(a.results)
    # the ratios again with today's goals (bench.py RATIOS), so an older run is not shown against a withdrawn goal
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    doc["ratios"] = bench.ratios({e["name"]: e for e in doc["scenarios"]})
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    report(doc, src, a.out, a.img, load_levers(a.results))
    headline(doc, os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md"))


if __name__ == "__main__":
    main()
