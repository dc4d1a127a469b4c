#!/usr/bin/env python3
"""ghz-bench scenario runner: started by ghz-bench/run.sh once the kvmesh stack, the ceiling nginx and Envoy and
etcd are up. Runs every scenario (warm-up discarded, N runs per point), samples the CPU time of every server
process around each run, writes one JSON result and prints a table. Python standard library only."""

import argparse
import base64
import csv
import io
import json
import os
import platform
import random
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
VALUE = "v" * 256
NKEYS = 1000
KVMESH_DESCRIPTOR = os.path.join(os.path.dirname(BENCH), "proto/target/descriptor/kvmesh.pb")
CONC = 64

MODES = {
    # warm: seconds per warm-up run (discarded); warm_max: most warm-up seconds per scenario; warm_tol, warm_agree:
    # the warm-up ends when the last warm_agree warm-up runs agree within warm_tol of the largest (None: one warm-up
    # run, no check; two in a row were not enough: REST GET settled at 4,400/s over two 5 s runs, then measured
    # 6,100/s); dur: seconds per measured run; runs: measured runs per point; ol_dur: open-loop seconds per point;
    # redis_n: redis-benchmark requests; lag_*: write-visible-lag rate (writes/s), seconds, one write in N probed
    "quick": dict(warm=1, warm_max=1, warm_tol=None, dur=2, runs=1, ol_dur=1, redis_n=100_000, lag_rate=500,
                  lag_dur=2, lag_every=1),
    # jit_idle, warm_max_jit: a kvmesh scenario's warm-up also waits (up to warm_max_jit seconds) until the JIT
    # compiler threads of the four kvmesh JVMs together used at most jit_idle cores in the last warm-up run: on a slow
    # 2-core host C2 kept compiling for about two minutes of REST PUT (0.2 cores per JVM, 2026-12-07) while the
    # throughput of 5 s runs already agreed, so CPU per request measured JIT work, not the write path
    "full": dict(warm=5, warm_max=60, warm_tol=0.10, warm_agree=3, dur=10, runs=3, ol_dur=5, redis_n=400_000,
                 lag_rate=3000, lag_dur=10, lag_every=10, jit_idle=0.05, warm_max_jit=240),
}
MODES["levers"] = dict(MODES["full"])          # ghz-bench/run.sh levers: the main four scenarios per lever, as in full
MODES["levers-quick"] = dict(MODES["quick"])   # its smoke test
MODES["scale"] = dict(MODES["full"])           # ghz-bench/run.sh scale: a large store (run_scale)
MODES["scale-quick"] = dict(MODES["quick"])     # its smoke test (GHZ_SCALE_KEYS, GHZ_SCALE_OPLOG_S small)
OPEN_LOOP_FRACTIONS = [0.25, 0.5, 0.75, 0.9]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def redact(text):
    """text without the passwords a command line may carry: URIs' user info and redis-benchmark's -a."""
    text = re.sub(r"//([^:/@\s]*):[^@\s]*@", r"//\1:***@", text)
    return re.sub(r"(^|\s)-a \S+", r"\1-a ***", text)


def sh(cmd, timeout, env=None, check=True):
    """Runs cmd (a list), bounded in time; returns stdout. Raises on failure when check."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if check and p.returncode != 0:
        raise RuntimeError(redact(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-600:]}"))
    return p.stdout + ("" if check else p.stderr)


# ---------------------------------------------------------------- CPU accounting from /proc


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid = field 4, utime..cstime = fields 14..17
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_table():
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(d)
            if st:
                table[int(d)] = st
    return table


class CpuGroups:
    """Named groups of processes (a root pid and all its descendants). A group's CPU time is utime+stime of every
    live member plus cutime+cstime (children already reaped, e.g. PostgreSQL backends that exited)."""

    def __init__(self, roots):
        self.roots = {name: pid for name, pid in roots.items() if pid}

    def sample(self):
        table = proc_table()
        children = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        out = {}
        for name, root in self.roots.items():
            if root not in table:
                continue
            ticks, stack = 0, [root]
            while stack:
                p = stack.pop()
                _, own, reaped = table[p]
                ticks += own + reaped
                stack.extend(children.get(p, []))
            out[name] = ticks
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["load generator"] = round((kids.ru_utime + kids.ru_stime) * CLK)
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        out["_machine_busy"] = sum(int(x) for x in fields) - int(fields[3]) - int(fields[4])
        return out

    @staticmethod
    def delta(before, after, seconds, requests):
        res = {}
        for name, t1 in after.items():
            if name not in before:
                continue
            secs = (t1 - before[name]) / CLK
            res[name] = {"cores": round(secs / seconds, 3),
                         "us_per_req": round(secs * 1e6 / requests, 2) if requests else None}
        return res


def jit_ticks(pids):
    """CPU ticks of the JIT compiler threads (C1/C2 CompilerThread*) of these JVMs so far."""
    ticks = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            if "CompilerThre" in st[st.index("(") + 1:st.rindex(")")]:
                fields = st[st.rindex(")") + 2:].split()
                ticks += int(fields[11]) + int(fields[12])
    return ticks


def read_pid(path):
    try:
        with open(path) as f:
            return int(re.sub(r"\D", "", f.readline()) or 0) or None
    except OSError:
        return None


# ---------------------------------------------------------------- tools' output


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    i = min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))
    return values[i]


def run_wrk(url, script, seconds, env, conns=CONC, threads=2):
    with open(os.path.join(BENCH, "wrk", "common.lua")) as f:
        common = f.read()
    with open(os.path.join(BENCH, "wrk", script)) as f:
        body = f.read()
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="ghzbench-")
    with os.fdopen(fd, "w") as f:
        f.write(common + "\n" + body)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", path, url]
    try:
        out = sh(cmd, timeout=seconds + 60, env=env)
    finally:
        os.unlink(path)
    m = re.search(r"^WRKJSON (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary: {out[-400:]}")
    r = json.loads(m.group(1))
    errors = r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_status"] + r["errors_timeout"]
    dur = r["duration_us"] / 1e6
    return dict(requests=r["requests"], seconds=dur, throughput=r["requests"] / dur, errors=errors,
                p50_ms=r["p50_us"] / 1000, p99_ms=r["p99_us"] / 1000, p999_ms=r["p999_us"] / 1000,
                command=shlex.join(cmd[:-3] + ["-s", f"ghz-bench/wrk/{script}", url]))


# A stack with auth on (run.sh with KVMESH_BENCH_AUTH=on): kvmesh calls and requests carry its admin token.
TOKEN = os.environ.get("KVMESH_BENCH_TOKEN", "")


def auth_header():
    return {"Authorization": ["Bearer " + TOKEN]} if TOKEN else {}


def run_ghz(target, call, seconds, data=None, data_file=None, proto=None, conns=4, conc=CONC, n=None):
    cmd = ["ghz", "--insecure", "--call", call, "-c", str(conc), "--connections", str(conns), "-O", "json",
           "--timeout", "10s"]
    if TOKEN and call.startswith("kvmesh."):
        cmd += ["--metadata", json.dumps({"authorization": "Bearer " + TOKEN})]
    if proto:
        cmd += ["--proto", proto]
    elif call.startswith("kvmesh."):
        # ghz 0.93.0 asks for v1alpha reflection; kv-service serves v1 only, so ghz reads the descriptor set
        cmd += ["--protoset", KVMESH_DESCRIPTOR]
    if n:
        cmd += ["-n", str(n)]
    else:
        cmd += ["-z", f"{seconds}s"]
    if data_file:
        cmd += ["-D", data_file]
    elif data is not None:
        cmd += ["-d", data]
    cmd.append(target)
    out = sh(cmd, timeout=(seconds or 60) + 60)
    r = json.loads(out)
    lat = [d["latency"] / 1e6 for d in r.get("details") or [] if d.get("status") == "OK"]
    ok = (r.get("statusCodeDistribution") or {}).get("OK", 0)
    total_s = r["total"] / 1e9
    shown = [c if len(c) < 200 else c[:60] + "…" for c in cmd]
    shown = [c.replace(TOKEN, "$TOKEN") if TOKEN else c for c in shown]
    shown = [c.replace(os.path.dirname(BENCH) + "/", "") for c in shown]
    kinds = r.get("errorDistribution") or {}
    # calls still in flight when -z ends are cut by ghz itself (at most one per concurrent worker): not errors
    cut = sum(v for k, v in kinds.items() if "transport is closing" in k or "client connection is closing" in k)
    return dict(requests=ok, seconds=total_s, throughput=ok / total_s, errors=r["count"] - ok - cut, cut_at_end=cut,
                p50_ms=pct(lat, 0.5), p99_ms=pct(lat, 0.99), p999_ms=pct(lat, 0.999),
                command=shlex.join(shown), error_kinds=kinds)


def run_vegeta(targets_path, rate, seconds):
    res = tempfile.mktemp(prefix="ghzbench-vegeta-", suffix=".bin")
    cmd = ["vegeta", "attack", "-format=json", f"-targets={targets_path}", f"-rate={int(rate)}/s",
           f"-duration={seconds}s", "-timeout=10s", "-max-workers=1024", f"-output={res}"]
    try:
        sh(cmd, timeout=seconds + 60)
        out = sh(["vegeta", "encode", "--to", "csv", res], timeout=120)
    finally:
        if os.path.exists(res):
            os.unlink(res)
    lat, ok, n, t_min, t_max = [], 0, 0, None, None
    for row in csv.reader(io.StringIO(out)):
        if not row:
            continue
        n += 1
        ts, code, latency = int(row[0]), int(row[1]), int(row[2])
        t_min = ts if t_min is None else min(t_min, ts)
        t_max = ts if t_max is None else max(t_max, ts)
        if code == 200:
            ok += 1
            lat.append(latency / 1e6)
    return dict(requests=ok, seconds=seconds, throughput=ok / seconds, errors=n - ok, offered=rate,
                p50_ms=pct(lat, 0.5), p99_ms=pct(lat, 0.99), p999_ms=pct(lat, 0.999),
                command=shlex.join([c if not c.startswith("-targets=") else "-targets=TARGETS.jsonl" for c in cmd[:-1]])
                + " | vegeta encode --to csv")


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, env, only):
        self.e = env
        self.mode = env["MODE"]
        self.m = MODES[self.mode]
        self.only = only
        self.run_dir = env["RUN_DIR"]
        self.cpu = CpuGroups(self.roots())
        self.results = {}
        self.tag = str(int(time.time()))
        self.http = f"http://127.0.0.1:{env['HTTP_PORT']}"
        self.etcd = f"http://127.0.0.1:{env['ETCD_PORT']}" if env.get("ETCD_PORT") else None
        self.direct = f"127.0.0.1:{env['REPLICA1_PORT']}"
        self.envoy = f"127.0.0.1:{env['ENVOY_PORT']}"

    def roots(self):
        """The process trees whose CPU time is sampled, by their pid files (read again after a restart)."""
        env, run = self.e, self.run_dir
        return {
            "nginx": read_pid(f"{run}/pids/nginx.pid"),
            "envoy": read_pid(f"{run}/pids/envoy.pid"),
            "kv-service-1": read_pid(f"{run}/pids/kv-service-1.pid"),
            "kv-service-2": read_pid(f"{run}/pids/kv-service-2.pid"),
            "kv-consumer-1": read_pid(f"{run}/pids/kv-consumer-1.pid"),
            "kv-consumer-2": read_pid(f"{run}/pids/kv-consumer-2.pid"),
            "redis": read_pid(f"{run}/redis/redis.pid"),
            "rabbitmq": self.beam_pid(),
            "postgres": read_pid(f"{run}/postgres/data/postmaster.pid"),
            # not started in levers mode
            "ceiling nginx": int(env.get("CEIL_NGINX_PID") or 0),
            "ceiling envoy": int(env.get("CEIL_ENVOY_PID") or 0),
            "edge ceiling nginx": int(env.get("EDGE_CEIL_NGINX_PID") or 0),
            "edge ceiling envoy": int(env.get("EDGE_CEIL_ENVOY_PID") or 0),
            "edge ceiling backend": int(env.get("EDGE_CEIL_BACKEND_PID") or 0),
            "etcd": int(env.get("ETCD_PID") or 0),
        }

    def memory(self):
        """Resident memory (MB) of every process tree at the end of the run, after every scenario (PostgreSQL: the
        postmaster and its backends, whose shared buffers each count again; nginx: master and workers)."""
        table = proc_table()
        children = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        out = {}
        for name, root in self.roots().items():
            if not root or root not in table:
                continue
            kb, stack, procs = 0, [root], 0
            while stack:
                p = stack.pop()
                kb += rss_kb(p)
                procs += 1
                stack.extend(children.get(p, []))
            out[name] = dict(rss_mb=round(kb / 1024, 1), processes=procs)
        return out

    def beam_pid(self):
        pid = read_pid(f"{self.e['RUN_DIR']}/rabbitmq/rabbit.pid")
        if pid:
            return pid
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        c = f.read().decode(errors="replace")
                except OSError:
                    continue
                if "beam.smp" in c and self.e["RUN_DIR"] in c:
                    return int(d)
        return None

    # -- how many writes share a broker message and a PostgreSQL transaction (group commit at work)

    def metrics_texts(self, *port_settings):
        """The Prometheus text of each part whose port the stack's own stack.env lists under these settings
        (KVMESH_REPLICA_ADMIN_PORTS, KVMESH_CONSUMER_HTTP_PORTS); None if a part did not answer."""
        path = os.path.join(self.run_dir, "stack.env")
        st = read_env(path) if os.path.exists(path) else {}
        texts = []
        for key in port_settings:
            for port in (p for v in shlex.split(st.get(key) or "")[0:1] for p in v.split(",") if p.strip()):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port.strip()}/metrics", timeout=5) as resp:
                        texts.append(resp.read().decode())
                except (OSError, urllib.error.URLError):
                    return None
        return texts

    def batch_counters(self):
        """Totals over every replica and consumer: operations and broker messages published
        (kvmesh_publish_batch_ops), operations and transactions applied (kvmesh_consumer_batch_size). None if a
        part did not answer."""
        texts = self.metrics_texts("KVMESH_REPLICA_ADMIN_PORTS", "KVMESH_CONSUMER_HTTP_PORTS")
        if texts is None:
            return None
        totals = dict.fromkeys(BATCH_METRICS, 0.0)
        for line in (ln for t in texts for ln in t.splitlines()):
            m = METRIC_LINE.match(line)
            if m and m.group(1) in totals:
                totals[m.group(1)] += float(m.group(2))
        return totals

    @staticmethod
    def batching(before, after, elapsed):
        """Operations per broker message and per PostgreSQL transaction between two batch_counters samples."""
        if not before or not after:
            return None
        d = {k: after[k] - before[k] for k in BATCH_METRICS}
        msgs, txs = d["kvmesh_publish_batch_ops_count"], d["kvmesh_consumer_batch_size_operations_count"]
        return dict(
            messages_per_s=round(msgs / elapsed, 1), transactions_per_s=round(txs / elapsed, 1),
            ops_per_message=round(d["kvmesh_publish_batch_ops_sum"] / msgs, 2) if msgs else None,
            ops_per_transaction=round(d["kvmesh_consumer_batch_size_operations_sum"] / txs, 2) if txs else None)

    # -- one point: warm-up, N runs, CPU per run, median/min/max

    def point(self, name, group, fn, runs=None, warm=True, note=None, **meta):
        if self.only and name not in self.only:
            return None
        runs = runs or self.m["runs"]
        log(f"{name}: {'warm-up + ' if warm else ''}{runs} run(s)")
        entry = dict(name=name, group=group, runs=[], note=note, **meta)
        try:
            if warm:
                entry["warmup"] = self.warm_up(name, fn, jvms=group == "kvmesh")
            pids = [self.cpu.roots[n] for n in ("kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2")
                    if self.cpu.roots.get(n)] if group == "kvmesh" else []
            for _ in range(runs):
                counters0 = self.batch_counters() if pids else None
                before, t0, jit0 = self.cpu.sample(), time.time(), jit_ticks(pids)
                r = fn(self.m["dur"])
                elapsed = time.time() - t0
                after = self.cpu.sample()
                if counters0:
                    # the consumers may still apply what this run queued: their figure is what they did meanwhile
                    r["batching"] = self.batching(counters0, self.batch_counters(), elapsed)
                if pids:
                    # JIT compiler threads of the kvmesh JVMs during this run (part of the JVMs' CPU above)
                    r["jit_cores"] = round((jit_ticks(pids) - jit0) / CLK / elapsed, 3)
                cpu = CpuGroups.delta(before, after, elapsed, r["requests"])
                r["machine_busy_cores"] = cpu.pop("_machine_busy")["cores"]
                if not r.pop("cpu_measured", True):
                    r["cpu"], r["machine_busy_cores"] = {}, None
                else:
                    r["cpu"] = cpu
                    # CPU used meanwhile by processes this run did not start (other people's builds and stacks)
                    r["others_cores"] = round(max(0.0, r["machine_busy_cores"] - sum(v["cores"] for v in cpu.values())), 3)
                entry["runs"].append(r)
                log(f"  {name}: {r['throughput']:,.0f}/s p50 {fmt_ms(r.get('p50_ms'))} p99 {fmt_ms(r.get('p99_ms'))}"
                    f" errors {r.get('errors', 0)}")
        except Exception as ex:  # a scenario that fails is recorded, and the run goes on
            entry["failure"] = str(ex)[-800:]
            log(f"  {name}: FAILED: {entry['failure']}")
        summarise(entry)
        self.results[name] = entry
        return entry

    def warm_up(self, name, fn, jvms=False):
        """Warm-up runs (discarded) of m['warm'] seconds until the last m['warm_agree'] of them agree within
        m['warm_tol'] of the largest, or until m['warm_max'] seconds of warm-up: JITs (four JVMs compiling on two
        busy cores), caches and connection pools settle before the measured runs. With warm_tol None (quick mode),
        one run and no check. Returns what happened (with the CPU others used meanwhile), for the JSON."""
        m = self.m
        tol, step, budget, agree = m["warm_tol"], m["warm"], m["warm_max"], m.get("warm_agree", 2)
        jit_idle = m.get("jit_idle") if jvms else None
        if jit_idle is not None:
            budget = max(budget, m["warm_max_jit"])
        pids = [self.cpu.roots[n] for n in ("kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2")
                if self.cpu.roots.get(n)]
        seen, others, jit, spent, converged = [], [], [], 0.0, None
        while True:
            before, t0, jit0 = self.cpu.sample(), time.time(), jit_ticks(pids)
            r = fn(step)
            elapsed = time.time() - t0
            jit.append(round((jit_ticks(pids) - jit0) / CLK / elapsed, 2))
            cpu = CpuGroups.delta(before, self.cpu.sample(), elapsed, r["requests"])
            busy = cpu.pop("_machine_busy")["cores"]
            others.append(round(max(0.0, busy - sum(v["cores"] for v in cpu.values())), 2))
            spent += elapsed
            seen.append(round(r["throughput"], 1))
            if tol is None:
                break
            last = seen[-agree:]
            if (len(last) == agree and max(last) > 0 and (max(last) - min(last)) / max(last) <= tol
                    and (jit_idle is None or jit[-1] <= jit_idle)):
                converged = True
                break
            if spent + step > budget:
                converged = False
                break
        verdict = "not checked" if converged is None else ("converged" if converged else "NOT converged")
        jit_note = f"; JIT threads {' → '.join(f'{v:.2f}' for v in jit)} cores" if jvms else ""
        log(f"  {name}: warm-up {len(seen)} x {step}s ({' → '.join(f'{v:,.0f}' for v in seen)}/s{jit_note}): {verdict}")
        return dict(runs=len(seen), run_seconds=step, seconds=round(spent, 1), throughputs=seen, others_cores=others,
                    jit_cores=jit if jvms else None, jit_idle=jit_idle, converged=converged, tolerance=tol,
                    agree=agree if tol is not None else None, max_seconds=budget)

    # -- helpers

    def rabbitmqctl(self, *args):
        return sh([os.path.join(self.e["ROOT"], "scripts/servers.sh"), "rabbitmqctl", self.run_dir, *args], timeout=60)

    def backlog(self):
        out = self.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        total = 0
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("kv.ops.") and parts[1].isdigit() and "dead" not in parts[0]:
                total += int(parts[1])
        return total

    def drain(self, name, limit=120):
        """Waits until kv-consumer has applied the writes a PUT scenario queued; records the backlog."""
        t0 = time.time()
        left = self.backlog()
        first = left
        while left > 0 and time.time() - t0 < limit:
            time.sleep(1)
            left = self.backlog()
        secs = time.time() - t0
        if name in self.results:
            self.results[name]["backlog_after"] = dict(messages=first, drained_s=round(secs, 1), left=left)
        if first:
            log(f"  {name}: {first} messages were still queued at the end; drained in {secs:.1f}s (left {left})")

    def preload(self):
        log("preloading 1000 keys into kvmesh (ghz Put direct)" + (" and etcd (ghz KV/Put)" if self.etcd else ""))
        run_ghz(self.direct, "kvmesh.v1.KeyValue/Put", None, n=NKEYS, conc=16, conns=1,
                data=json.dumps({"key": "bget-{{.RequestNumber}}", "value": VALUE}))
        if self.etcd:
            self.preload_etcd()
        self.wait_visible()

    def preload_etcd(self):
        self.etcd_put_file = os.path.join(self.run_dir, "etcd-put.json")
        self.etcd_get_file = os.path.join(self.run_dir, "etcd-range.json")
        with open(self.etcd_get_file, "w") as f:
            json.dump([{"key": b64(f"eget-{i}")} for i in range(NKEYS)], f)
        preload_file = os.path.join(self.run_dir, "etcd-preload.json")
        with open(preload_file, "w") as f:
            json.dump([{"key": b64(f"eget-{i}"), "value": b64(VALUE)} for i in range(NKEYS)], f)
        # the gRPC Put scenario writes other keys than the ones read: rewriting the read keys hundreds of times
        # (etcd keeps every revision until compaction) made later reads of them slower in the first full run
        with open(self.etcd_put_file, "w") as f:
            json.dump([{"key": b64(f"egput-{i}"), "value": b64(VALUE)} for i in range(NKEYS)], f)
        run_ghz(f"127.0.0.1:{self.e['ETCD_PORT']}", "etcdserverpb.KV/Put", None, n=NKEYS, conc=16, conns=1,
                proto=os.path.join(BENCH, "proto/etcd_kv.proto"), data_file=preload_file)

    def wait_visible(self):
        # the last keys written are visible through the REST API (applied and cached)
        deadline = time.time() + 60
        for k in ("bget-0", f"bget-{NKEYS - 1}"):
            while True:
                try:
                    req = urllib.request.Request(f"{self.http}/kv?key={k}",
                                                 headers={h: v[0] for h, v in auth_header().items()})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        if r.status == 200:
                            break
                except Exception:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"preloaded key {k} not visible after 60 s")
                time.sleep(0.2)
        self.drain("preload")

    def wrk_env(self):
        return {"WRK_RUN": f"{self.tag}{random.randrange(10**6)}", "WRK_KEYS": str(NKEYS)}

    def envoy_runtime(self, settings):
        """Sets Envoy runtime keys through its admin (runtime_modify) and checks that /runtime shows them. Envoy
        answers runtime_modify with 503 "No admin layer specified" when its bootstrap has no layered_runtime with an
        admin layer (envoy/envoy.yaml has none as of 2026-11-25): then this run's rendered copy gets one and Envoy is
        restarted (`start.sh restart envoy`, before any scenario). Returns how the keys were set."""
        if not settings:
            return None
        admin = f"http://127.0.0.1:{self.e['ENVOY_ADMIN_PORT']}"
        query = "&".join(f"{k}={v}" for k, v in settings.items())

        def modify():
            req = urllib.request.Request(f"{admin}/runtime_modify?{query}", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                return None
            except urllib.error.HTTPError as ex:
                return f"{ex.code} {ex.read().decode(errors='replace').strip()}"

        how = "runtime_modify"
        refused = modify()
        if refused and "admin layer" in refused:
            conf = os.path.join(self.run_dir, "conf", "envoy.yaml")
            with open(conf) as f:
                text = f.read()
            if "layered_runtime" in text:
                raise RuntimeError(f"Envoy refused runtime_modify ({refused}) although {conf} has a layered_runtime")
            with open(conf, "a") as f:
                f.write("\n# added by ghz-bench (levers): an admin layer, so runtime_modify works\n"
                        "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {}\n"
                        "  - name: admin\n    admin_layer: {}\n")
            log(f"Envoy refused runtime_modify ({refused}): admin layer added to {conf}; restarting Envoy")
            sh([os.path.join(self.e["ROOT"], "start.sh"), "restart", "envoy"], timeout=180,
               env={"KVMESH_MODE": "native", "KVMESH_RUN_DIR": self.run_dir})
            self.cpu = CpuGroups(self.roots())   # Envoy has a new pid
            how = "runtime_modify, after adding an admin runtime layer to the run's rendered envoy.yaml and restarting Envoy"
            refused = modify()
        if refused:
            raise RuntimeError(f"Envoy refused runtime_modify?{query}: {refused}")
        with urllib.request.urlopen(f"{admin}/runtime", timeout=10) as r:
            entries = json.load(r).get("entries") or {}
        for k, v in settings.items():
            got = (entries.get(k) or {}).get("final_value")
            if got != v:
                raise RuntimeError(f"Envoy runtime {k}: wanted {v!r}, /runtime shows {got!r}")
        log(f"Envoy runtime set: {query} ({how})")
        return how

    # -- scenarios

    def idle(self, seconds):
        time.sleep(seconds)
        return dict(requests=0, seconds=seconds, throughput=0.0, errors=0, p50_ms=None, p99_ms=None, p999_ms=None,
                    command=f"sleep {seconds}  # no load: what each process burns on its own")

    def ceilings(self):
        e = self.e
        self.point("nginx return 200", "ceiling",
                   lambda d: run_wrk(f"http://127.0.0.1:{e['CEIL_NGINX_PORT']}/", "plain_get.lua", d, self.wrk_env()))
        self.point("envoy direct_response", "ceiling",
                   lambda d: run_wrk(f"http://127.0.0.1:{e['CEIL_ENVOY_PORT']}/", "plain_get.lua", d, self.wrk_env()))
        if e.get("EDGE_CEIL_PORT"):
            # REST GET's very request (kv_get.lua) through kvmesh's own nginx and Envoy configuration, transcoded,
            # to a KeyValue backend that does no work (ConstantKeyValueMain): what the edge alone can carry
            self.point("edge ceiling (REST GET to a do-nothing KeyValue)", "ceiling",
                       lambda d: run_wrk(f"http://127.0.0.1:{e['EDGE_CEIL_PORT']}", "kv_get.lua", d, self.wrk_env()))
        for op in ("set", "get"):
            self.point(f"redis {op.upper()}", "ceiling", lambda d, op=op: self.redis_bench(op), warm=False)
        self.point("rabbitmq quorum confirms", "ceiling", self.perftest)
        # the shape kvmesh's group commit gives the broker: two publishers (the replicas) with one unconfirmed message
        # each, messages of a few operations, one consumer acking: each message its own WAL write and fsync
        self.point("rabbitmq quorum, 1 confirm in flight x 2", "ceiling",
                   lambda d: self.perftest(d, ["-x", "2", "-y", "1", "-s", "2500", "-c", "1", "-q", "512"]))
        self.point("postgres 100-row upsert", "ceiling", self.pgbench)

    def credentials(self):
        """The stores' passwords of the stack (its run folder's secrets/credentials.env, mode 0600): never printed,
        never in a recorded command (see masked)."""
        return read_env(self.e.get("CREDENTIALS_FILE") or os.path.join(self.run_dir, "secrets/credentials.env"))

    def masked(self, cmd):
        """cmd as a string for the results, with every password of the stack replaced by ***."""
        text = shlex.join(cmd)
        for k, v in self.credentials().items():
            if k.endswith("PASSWORD") and v:
                text = text.replace(v, "***")
        return text

    def redis_bench(self, op):
        n = self.m["redis_n"]
        # redis-benchmark takes its password only as -a (no environment variable); the recorded command masks it
        cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", self.e["REDIS_PORT"],
               "-a", self.credentials()["KVMESH_REDIS_PASSWORD"], "-c", str(CONC), "-n", str(n),
               "-d", "256", "-r", "100000", "-t", op, "--csv"]
        t0 = time.time()
        out = sh(cmd, timeout=300)
        secs = time.time() - t0
        rows = list(csv.DictReader(io.StringIO(out)))
        row = rows[-1]
        return dict(requests=n, seconds=secs, throughput=float(row["rps"]), errors=0,
                    p50_ms=float(row["p50_latency_ms"]), p99_ms=float(row["p99_latency_ms"]), p999_ms=None,
                    command=self.masked(cmd))

    def perftest(self, seconds, shape=("-x", "1", "-y", "1", "-s", "256", "-c", "1000")):
        e = self.e
        queue = "ghz-bench-perftest" + ("" if "-q" not in shape else "-shape")
        cmd = [f"{e['JAVA_HOME']}/bin/java", "-Xmx256m", "-cp", f"{e['PERFTEST_LIB']}/*", "com.rabbitmq.perf.PerfTest",
               "-h", f"amqp://{self.credentials()['KVMESH_AMQP_USER']}:{self.credentials()['KVMESH_AMQP_PASSWORD']}"
                     f"@127.0.0.1:{e['AMQP_PORT']}/%2F", *shape,
               "--quorum-queue", "-u", queue, "-z", str(seconds)]
        out = sh(cmd, timeout=seconds + 90)
        sent = re.search(r"sending rate avg: ([\d.]+) msg/s", out)
        recv = re.search(r"receiving rate avg: ([\d.]+) msg/s", out)
        if not sent:
            raise RuntimeError(f"PerfTest printed no sending rate: {out[-400:]}")
        rate = float(sent.group(1))
        lat = re.findall(r"confirm latency min/median/75th/95th/99th ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) (µs|ms)", out)
        p50 = p99 = None
        if lat:
            scale = 1000 if lat[-1][5] == "µs" else 1
            p50, p99 = float(lat[-1][1]) / scale, float(lat[-1][4]) / scale
        shown = [c if "perftest/target/lib" not in c else "ghz-bench/perftest/target/lib/*" for c in cmd]
        shown = shlex.split(self.masked(shown))
        return dict(requests=int(rate * seconds), seconds=seconds, throughput=rate, errors=0,
                    received=float(recv.group(1)) if recv else None, p50_ms=p50, p99_ms=p99, p999_ms=None,
                    command=shlex.join(shown))

    def pgbench(self, seconds):
        e = self.e
        base = ["-h", "127.0.0.1", "-p", e["PG_PORT"], "-U", "postgres", "-d", "postgres"]
        pw = {"PGPASSWORD": self.credentials()["KVMESH_PG_SUPERUSER_PASSWORD"]}   # scram-sha-256, no trust
        if not getattr(self, "_pg_ready", False):
            sh(["psql", *base, "-Xqc",
                "CREATE TABLE IF NOT EXISTS ghz_bench_kv (key text PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)"],
               timeout=30, env=pw)
            self._pg_ready = True
        script = os.path.join(self.run_dir, "pgbench-upsert.sql")
        with open(script, "w") as f:
            f.write("\\set base random(1, 1000000)\n"
                    "INSERT INTO ghz_bench_kv (key, value, version) "
                    "SELECT 'pgb-' || lpad((:base + g)::text, 8, '0'), repeat('v', 256), 1 FROM generate_series(1, 100) g "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = ghz_bench_kv.version + 1;\n")
        cmd = ["pgbench", *base, "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", str(seconds), "-f", script]
        out = sh(cmd, timeout=seconds + 60, env=pw)
        tps = re.search(r"tps = ([\d.]+)", out)
        lat = re.search(r"latency average = ([\d.]+) ms", out)
        txs = re.search(r"number of transactions actually processed: (\d+)", out)
        fails = re.search(r"number of failed transactions: (\d+)", out)
        return dict(requests=int(txs.group(1)) * 100, seconds=seconds, throughput=float(tps.group(1)) * 100,
                    errors=int(fails.group(1)) if fails else 0, unit="rows/s", tx_per_s=float(tps.group(1)),
                    p50_ms=None, p99_ms=None, p999_ms=None, mean_tx_ms=float(lat.group(1)) if lat else None,
                    command=shlex.join(cmd[:-1] + ["pgbench-upsert.sql"]) + "  # 100 rows per statement")

    def rest_get(self, d):
        return run_wrk(self.http, "kv_get.lua", d, self.wrk_env())

    def rest_put(self, d):
        return run_wrk(self.http, "kv_put.lua", d, self.wrk_env())

    def grpc_get(self, target, d):
        return run_ghz(target, "kvmesh.v1.KeyValue/Get", d, data=json.dumps({"key": "bget-{{randomInt 0 %d}}" % NKEYS}))

    def grpc_put(self, target, prefix, d):
        # the same mechanism as etcd gRPC Put: a ghz data array of 1000 keys it cycles over (each put after the
        # first round a new version of an existing key), so neither side's load generator renders a UUID per call
        # (206 µs of ghz CPU per call on 2026-12-07, taken from the same two cores as the servers')
        f = os.path.join(self.run_dir, f"kvmesh-{prefix}.json")
        if not os.path.exists(f):
            with open(f, "w") as fh:
                json.dump([{"key": f"{prefix}-{self.tag}-{i}", "value": VALUE} for i in range(NKEYS)], fh)
        return run_ghz(target, "kvmesh.v1.KeyValue/Put", d, data_file=f)

    def main_four(self, between=None, open_loop=False):
        """REST GET, REST PUT, gRPC Get direct, gRPC Put direct (the levers suite runs only these); between(): the
        full suite's gRPC Get via Envoy, after gRPC Get direct as before; open_loop: the REST GET and REST PUT
        open-loop series, each right after its closed-loop point."""
        self.point("REST GET", "kvmesh", self.rest_get)
        if open_loop:
            self.open_loop("REST GET")
        self.point("REST PUT", "kvmesh", self.rest_put)
        self.drain("REST PUT")
        if open_loop:
            self.open_loop("REST PUT")
        self.point("gRPC Get direct", "kvmesh", lambda d: self.grpc_get(self.direct, d))
        if between:
            between()
        self.point("gRPC Put direct", "kvmesh", lambda d: self.grpc_put(self.direct, "gput", d))
        self.drain("gRPC Put direct")

    def kvmesh(self):
        self.main_four(between=lambda: self.point("gRPC Get via Envoy", "kvmesh", lambda d: self.grpc_get(self.envoy, d)),
                       open_loop=True)
        self.point("gRPC Put via Envoy", "kvmesh", lambda d: self.grpc_put(self.envoy, "eput", d))
        self.drain("gRPC Put via Envoy")
        self.point("REST mix 90/10", "kvmesh", lambda d: run_wrk(self.http, "kv_mix.lua", d, self.wrk_env()))
        self.drain("REST mix 90/10")
        self.point("REST List page 50", "kvmesh", lambda d: run_wrk(self.http, "kv_list.lua", d, self.wrk_env()))
        probed = "every write" if self.m["lag_every"] == 1 else f"one write in {self.m['lag_every']}"
        self.point("write-visible lag", "kvmesh", self.lag, warm=False,
                   note=f"open loop at {self.m['lag_rate']} writes/s, {probed} probed; lag = PUT acknowledged → its PUT event on a Watch stream of the probed keys (REST, through nginx), sent by the applier after PostgreSQL and Redis hold the write: an upper bound of when a GET sees it, with no polling load")
        self.drain("write-visible lag")
        # the same at half the REST PUT maximum measured above: the lag when the stack is not overloaded
        put = self.results.get("REST PUT")
        if put and put.get("median"):
            rate = max(10, int(put["median"]["throughput"] * 0.5))
            self.point("write-visible lag @50% PUT max", "kvmesh", lambda d: self.lag(d, rate=rate), warm=False,
                       note=f"open loop at {rate} writes/s (half the REST PUT median), {probed} probed")
            self.drain("write-visible lag @50% PUT max")
        self.restart_warmup()

    RESTART_WINDOW_S = 5
    RESTART_WATCH_S = 60

    def restart_warmup(self):
        """A replica restarted under load (issue 18): `./start.sh restart kv-service-1` while gRPC Get direct runs
        against it back to back in 5 s windows (ghz, as the gRPC Get direct scenario), for 60 s from the command;
        reported: each window's throughput and the seconds from the command to the end of the first window at 90 % of
        the steady throughput (the gRPC Get direct median above, else three windows before the restart) after the
        replica went down."""
        name = "replica restart: gRPC Get direct in 5 s windows"
        if self.only and name not in self.only:
            return
        log(f"{name}: restart kv-service-1 under load, {self.RESTART_WATCH_S}s of windows")
        w = self.RESTART_WINDOW_S
        entry = dict(name=name, group="warm-up", runs=[], note="./start.sh restart kv-service-1 with gRPC Get direct "
                     f"running in {w} s windows; time to 90 % of the steady throughput")
        try:
            if self.mode == "full":
                entry["aot_cache"] = self.aot_trained()
            base = self.results.get("gRPC Get direct")
            if base and base.get("median"):
                steady = base["median"]["throughput"]
            else:
                steady = statistics.median(self.grpc_get(self.direct, w)["throughput"] for _ in range(3))
            env = {"KVMESH_MODE": "native", "KVMESH_RUN_DIR": self.run_dir}
            t0 = time.time()
            restart = subprocess.Popen([os.path.join(self.e["ROOT"], "start.sh"), "restart", "kv-service-1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, **env})
            # the old process drains and keeps serving for a few seconds after the command: count from the first
            # window in which the replica served less than half the steady throughput (it was down)
            windows, t90, down = [], None, False
            while time.time() - t0 < self.RESTART_WATCH_S:
                ws = time.time()
                try:
                    tput = self.grpc_get(self.direct, w)["throughput"]
                except Exception:  # noqa: BLE001 - the replica is down: nothing served in this window
                    tput = 0.0
                    time.sleep(max(0.0, w - (time.time() - ws)))
                end = round(time.time() - t0, 1)
                windows.append(dict(start_s=round(ws - t0, 1), end_s=end, throughput=round(tput, 1)))
                down = down or tput < 0.5 * steady
                if down and t90 is None and tput >= 0.9 * steady:
                    t90 = end
            rc = restart.wait(timeout=180)
            tputs = [x["throughput"] for x in windows] or [0.0]
            entry["range"] = dict(throughput=[min(tputs), max(tputs)])
            entry.update(steady=round(steady, 1), windows=windows, seconds_to_90pct=t90, restart_rc=rc,
                         median=dict(throughput=windows[-1]["throughput"] if windows else 0.0,
                                     seconds_to_90pct=t90))
            seen = " → ".join(f"{x['throughput']:,.0f}" for x in windows)
            after = t90 if t90 is not None else f"more than {self.RESTART_WATCH_S}"
            log(f"  {name}: steady {steady:,.0f}/s; windows {seen}; 90 % after {after} s")
        except Exception as ex:  # recorded, and the run goes on
            entry["failure"] = str(ex)[-800:]
            log(f"  {name}: FAILED: {entry['failure']}")
        self.results[name] = entry

    def aot_trained(self):
        """With the JDK's AOT cache on (start.sh, KVMESH_AOT), a fresh stack's first kv-service records its training
        while it serves and the cache is assembled only after that process stops: the measured restart would then be
        the training run's own. So the replica in training is restarted first and the cache awaited (at most 180 s);
        returns whether kv-service's cache exists (None: the stack runs without AOT)."""
        with open(os.path.join(self.run_dir, "conf", "supervisord.conf")) as f:
            m = re.search(r'"([^"]*/kv-service\.aot)"', f.read())
        if not m:
            return None
        cache = m.group(1)
        if not os.path.exists(cache):
            for part in ("kv-service-1", "kv-service-2"):
                try:
                    with open(os.path.join(self.run_dir, "pids", f"{part}.pid")) as f, \
                            open(f"/proc/{f.read().strip()}/cmdline", "rb") as c:
                        training = b"-XX:AOTMode=record" in c.read()
                except OSError:
                    continue
                if training:
                    log(f"  {part} is the release's AOT training run: restarting it first, then awaiting the cache")
                    subprocess.run([os.path.join(self.e["ROOT"], "start.sh"), "restart", part], timeout=180,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "KVMESH_MODE": "native", "KVMESH_RUN_DIR": self.run_dir})
                    break
            deadline = time.time() + 180
            while not os.path.exists(cache) and time.time() < deadline:
                time.sleep(2)
        log(f"  kv-service's AOT cache: {'present' if os.path.exists(cache) else 'absent'}")
        return os.path.exists(cache)

    def apply_lag_buckets(self):
        """The consumers' accept → commit histogram (kvmesh_consumer_apply_lag_seconds, cumulative buckets summed over
        partitions and consumers): {upper bound in seconds: count}; None if a consumer did not answer."""
        texts = self.metrics_texts("KVMESH_CONSUMER_HTTP_PORTS")
        if texts is None:
            return None
        buckets = {}
        for line in (ln for t in texts for ln in t.splitlines()):
            b = LAG_BUCKET.match(line)
            if b:
                le = float("inf") if b.group(1) == "+Inf" else float(b.group(1))
                buckets[le] = buckets.get(le, 0.0) + float(b.group(2))
        return buckets or None

    @staticmethod
    def apply_lag(before, after):
        """From two apply_lag_buckets samples: the operations committed meanwhile, the share committed within 50 ms of
        their acceptance, and the bucket bound under which 99 % of them were (an upper bound of their p99)."""
        if not before or not after:
            return None
        delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
        total = delta[-1][1]
        if total <= 0:
            return None
        within50 = next((c for le, c in delta if abs(le - 0.05) < 1e-9), None)
        p99 = next((le for le, c in delta if c >= 0.99 * total), None)
        return dict(operations=int(total), within_50ms=round(within50 / total, 4) if within50 is not None else None,
                    p99_at_most_ms=None if p99 in (None, float("inf")) else round(p99 * 1000))

    def lag(self, _seconds, rate=None):
        m = self.m
        buckets0 = self.apply_lag_buckets()
        cmd = [self.e["LAGPROBE"], "-url", self.http, "-rate", str(rate or m["lag_rate"]), "-duration", f"{m['lag_dur']}s",
               "-probe-every", str(m["lag_every"]), "-watch",
               "-prefix", f"lag-{self.tag}-{random.randrange(10**6)}"]
        r = json.loads(sh(cmd, timeout=m["lag_dur"] + 60))
        lag = r.get("lag_ms") or {}
        return dict(requests=r["acked"], seconds=m["lag_dur"], probed=r["seen"], throughput=r["acked"] / m["lag_dur"], offered=r["achieved_rate"],
                    errors=r["put_errors"] + r["timeouts"], p50_ms=lag.get("p50"), p99_ms=lag.get("p99"),
                    p999_ms=lag.get("p999"), ack_ms=r.get("ack_ms"), command=shlex.join(["ghz-bench/.bin/lagprobe"] + cmd[1:]),
                    # the same writes seen by the consumers: acceptance by a replica → commit in PostgreSQL
                    apply_lag=self.apply_lag(buckets0, self.apply_lag_buckets()))

    def etcd_scenarios(self):
        proto = os.path.join(BENCH, "proto/etcd_kv.proto")
        target = f"127.0.0.1:{self.e['ETCD_PORT']}"
        self.point("etcd JSON range", "etcd", lambda d: run_wrk(self.etcd, "etcd_range.lua", d, self.wrk_env()))
        self.open_loop("etcd JSON range")
        self.point("etcd JSON put", "etcd", lambda d: run_wrk(self.etcd, "etcd_put.lua", d, self.wrk_env()))
        self.open_loop("etcd JSON put")
        self.point("etcd gRPC Range", "etcd", lambda d: run_ghz(target, "etcdserverpb.KV/Range", d, proto=proto,
                                                              data_file=self.etcd_get_file))
        self.point("etcd gRPC Put", "etcd", lambda d: run_ghz(target, "etcdserverpb.KV/Put", d, proto=proto,
                                                            data_file=self.etcd_put_file),
                   note="cycles over 1000 keys (ghz data array): each put is a new revision of an existing key")
        self.point("etcdctl check perf", "etcd", self.check_perf, runs=1, warm=False,
                   note="etcd's own 60 s write check, load s (150 writes/s offered)" +
                   ("; quick mode ran it while the kvmesh stack was starting, so it is not comparable" if self.mode == "quick" else ""))

    def check_perf(self, _seconds):
        f = os.path.join(self.run_dir, "etcd-check-perf.txt")
        cmd = ["etcdctl", "--endpoints", f"127.0.0.1:{self.e['ETCD_PORT']}", "check", "perf", "--load", "s"]
        measured = not os.path.exists(f)
        if not measured:
            with open(f) as fh:
                out = fh.read()
        else:
            out = sh(cmd, timeout=150, env={"ETCDCTL_API": "3"}, check=False)
        tput = re.search(r"Throughput is (\d+) writes/s", out)
        slow = re.search(r"Slowest request took ([\d.]+)s", out)
        if not tput:
            raise RuntimeError(f"etcdctl check perf printed no throughput: {out[-300:]}")
        return dict(requests=int(tput.group(1)) * 60, seconds=60, throughput=float(tput.group(1)), errors=0,
                    p50_ms=None, p99_ms=None, p999_ms=None, slowest_ms=float(slow.group(1)) * 1000 if slow else None,
                    cpu_measured=measured, verdict="PASS" if re.search(r"^PASS\s*$", out, re.M) else "FAIL",
                    output=out.strip()[-300:], command="ETCDCTL_API=3 " + shlex.join(cmd))

    # -- open loop: latency at fixed offered loads, fractions of the closed-loop maximum measured in this run

    def open_loop(self, base):
        """vegeta at 25/50/75/90% of `base`'s closed-loop median, run right after that closed-loop point, so both see
        the servers in the same state. (They used to run after every other scenario: etcd's JSON range was then
        offered fractions of a maximum measured on a fresh etcd, after about a million writes had made each etcd
        3.4 read copy its grown write-back buffer, and could not follow even the 25% point. See NOTES in report.py.)"""
        targets = {
            "REST GET": lambda rate, secs: self.vegeta_targets(
                [{"method": "GET", "url": f"{self.http}/kv?key=bget-{random.randrange(NKEYS)}", "header": auth_header()}
                 for _ in range(5000)]),
            "REST PUT": lambda rate, secs: self.vegeta_targets(
                [{"method": "PUT", "url": f"{self.http}/kv", "header": {"Content-Type": ["application/json"], **auth_header()},
                  "body": b64(json.dumps({"data": {"key": f"oput-{self.tag}-{random.randrange(10**9)}-{i}", "value": VALUE}}))}
                 for i in range(int(rate * secs * 1.05) + 10)]),
            "etcd JSON range": lambda rate, secs: self.vegeta_targets(
                [{"method": "POST", "url": f"{self.etcd}/v3/kv/range",
                  "body": b64(json.dumps({"key": b64(f"eget-{random.randrange(NKEYS)}")}))} for _ in range(5000)]),
            "etcd JSON put": lambda rate, secs: self.vegeta_targets(
                [{"method": "POST", "url": f"{self.etcd}/v3/kv/put",
                  "body": b64(json.dumps({"key": b64(f"oput-{self.tag}-{random.randrange(10**9)}-{i}"), "value": b64(VALUE)}))}
                 for i in range(int(rate * secs * 1.05) + 10)]),
        }
        make = targets[base]
        closed = self.results.get(base)
        if closed and closed.get("median"):
            top = closed["median"]["throughput"]
            for frac in OPEN_LOOP_FRACTIONS:
                rate = max(10, int(top * frac))
                secs = self.m["ol_dur"]
                name = f"open loop {base} @{int(frac * 100)}%"

                def fn(_d, rate=rate, secs=secs, make=make):
                    path = make(rate, secs)
                    try:
                        return run_vegeta(path, rate, secs)
                    finally:
                        os.unlink(path)
                self.point(name, "open loop", fn, warm=False, base=base, fraction=frac, offered=rate,
                           note=TARGET_NOTES[base])
            if base == "REST PUT":
                self.drain(f"open loop {base} @90%")

    def vegeta_targets(self, items):
        fd, path = tempfile.mkstemp(prefix="ghzbench-targets-", suffix=".jsonl")
        with os.fdopen(fd, "w") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")
        return path


TARGET_NOTES = {
    "REST GET": "TARGETS.jsonl: 5,000 GET /kv?key=bget-<random of 1,000 preloaded> (vegeta cycles over them)",
    "REST PUT": "TARGETS.jsonl: one PUT /kv with a new key and a 256-byte value per request",
    "etcd JSON range": "TARGETS.jsonl: 5,000 POST /v3/kv/range of a random preloaded key (base64)",
    "etcd JSON put": "TARGETS.jsonl: one POST /v3/kv/put with a new key and a 256-byte value per request",
}


# ---------------------------------------------------------------- levers: one change at a time against the defaults
#
# `ghz-bench/run.sh levers` starts a fresh stack for each configuration below, with its environment (every variable of
# LEVER_VARS is set: to the lever's value, else to "" which kvmesh reads as its default, so neither the caller's
# environment nor ./.env can change a configuration), applies its Envoy runtime settings, runs the main four
# scenarios and stops the stack; `--merge-levers` puts the parts in one JSON for report.py.

LEVER_VARS = ("KVMESH_PUBLISH_BATCH_OPS", "KVMESH_PUBLISH_IN_FLIGHT", "KVMESH_WORKER_THREADS", "KVMESH_JAVA_OPTS",
              "KVMESH_ENVOY_CONCURRENCY", "KVMESH_NGINX_WORKERS", "KVMESH_AUTH", "KVMESH_PARTITIONS",
              "KVMESH_PUBLISHER_LANES", "KVMESH_EVENTS_IDLE_MS", "KVMESH_PUBLISH_LINGER_US", "KVMESH_RABBITMQ_ERL_ARGS",
              "KVMESH_GRPC_EVENT_LOOPS")
LEVERS = [
    dict(name="baseline", what="the defaults: group commit on, 1 partition queue, gRPC handlers on the transport's "
         "threads, JVMs -Xmx512m (G1), Envoy logs only errors and slow requests"),
    dict(name="group commit off", what="one broker message per write, up to 1,024 unconfirmed per lane (as before "
         "group commit)", env={"KVMESH_PUBLISH_BATCH_OPS": "1", "KVMESH_PUBLISH_IN_FLIGHT": "1024"}),
    dict(name="handlers on 32 worker threads", what="gRPC handlers run on a pool of 32 threads (the default before "
         "2026-11-25), not on Netty's transport threads", env={"KVMESH_WORKER_THREADS": "32"}),
    dict(name="SerialGC", what="all four JVMs with the serial collector", env={"KVMESH_JAVA_OPTS": "-Xmx512m -XX:+UseSerialGC"}),
    dict(name="ParallelGC", what="all four JVMs with the parallel collector",
         env={"KVMESH_JAVA_OPTS": "-Xmx512m -XX:+UseParallelGC"}),
    dict(name="Envoy access log on every request", what="Envoy formats and writes an access-log line for every request "
         "(runtime kvmesh.access_log.min_status=0)", runtime={"kvmesh.access_log.min_status": "0"}),
    dict(name="auth on", what="API tokens on: every request carries a bearer token (ES256 JWT, signature checked once "
         "per token, then remembered) and is authorised per key", env={"KVMESH_AUTH": "on"}),
    # extras: only when named in GHZ_BENCH_LEVERS
    dict(name="Envoy 1 worker", what="Envoy with one worker thread instead of two", env={"KVMESH_ENVOY_CONCURRENCY": "1"},
         extra=True),
    dict(name="nginx 1 worker", what="nginx with one worker process instead of one per core",
         env={"KVMESH_NGINX_WORKERS": "1"}, extra=True),
    dict(name="8 partitions", what="8 partition queues, the default before 2026-12-07, instead of 1 "
         "(KVMESH_PARTITIONS): an eighth of the operations per partition, so fewer per broker message and per consumer "
         "transaction", env={"KVMESH_PARTITIONS": "8"}, extra=True),
    dict(name="4 partitions", what="4 partition queues instead of 1", env={"KVMESH_PARTITIONS": "4"}, extra=True),
    dict(name="2 partitions", what="2 partition queues instead of 1 (the default of a new run folder from the "
         "morning of 2026-12-07 until the levers below were measured)", env={"KVMESH_PARTITIONS": "2"}, extra=True),
    dict(name="1 publisher lane", what="one confirm-mode channel per replica instead of 4 (KVMESH_PUBLISHER_LANES)",
         env={"KVMESH_PUBLISHER_LANES": "1"}, extra=True),
    dict(name="1 partition", what="1 partition queue (KVMESH_PARTITIONS=1; the default of a new run folder since it was "
         "measured, 2026-12-07): every write of a replica in one publisher lane and every operation in one consumer's "
         "transactions, so the most operations per broker message and per transaction; one consumer applies, the "
         "other stands by", env={"KVMESH_PARTITIONS": "1"}, extra=True),
    dict(name="1 CPU per JVM", what="all four JVMs size their GC, JIT and thread pools for one processor "
         "(-XX:ActiveProcessorCount=1): fewer threads competing for the two cores",
         env={"KVMESH_JAVA_OPTS": "-Xmx512m -XX:ActiveProcessorCount=1"}, extra=True),
    dict(name="events always", what="every replica always subscribed to the change events (KVMESH_EVENTS_IDLE_MS=0, "
         "the behaviour before 2026-12-07): each applied batch's events are routed to and decoded by every replica, "
         "even when no SYNC write waits and no Watch is open", env={"KVMESH_EVENTS_IDLE_MS": "0"}, extra=True),
    dict(name="publish linger 1 ms", what="a busy publisher lane waits 1 ms, once the broker confirmed its last "
         "message, before it sends the next (KVMESH_PUBLISH_LINGER_US=1000): more writes per broker message when "
         "confirms come back fast", env={"KVMESH_PUBLISH_LINGER_US": "1000"}, extra=True),
    dict(name="publish linger 3 ms", what="the same with 3 ms (KVMESH_PUBLISH_LINGER_US=3000)",
         env={"KVMESH_PUBLISH_LINGER_US": "3000"}, extra=True),
    dict(name="Netty 1 event loop", what="each replica's gRPC transport on one Netty event-loop thread (the handlers "
         "run on it too) instead of grpc-java's shared loops, twice the processors (KVMESH_GRPC_EVENT_LOOPS=1; "
         "measured first on 2026-12-07 with -Dio.grpc.netty.shaded.io.netty.eventLoopThreads=1)",
         env={"KVMESH_GRPC_EVENT_LOOPS": "1"}, extra=True),
    dict(name="Netty 2 event loops", what="the same with two event-loop threads (KVMESH_GRPC_EVENT_LOOPS=2)",
         env={"KVMESH_GRPC_EVENT_LOOPS": "2"}, extra=True),
    dict(name="Netty default event loops", what="grpc-java's shared event loops, twice the processors "
         "(KVMESH_GRPC_EVENT_LOOPS=0)", env={"KVMESH_GRPC_EVENT_LOOPS": "0"}, extra=True),
    dict(name="RabbitMQ 1 scheduler", what="the broker's Erlang VM with one scheduler thread instead of one per core "
         "(KVMESH_RABBITMQ_ERL_ARGS='+S 1:1'): no hand-offs between scheduler threads on the way from a publish to "
         "its confirm", env={"KVMESH_RABBITMQ_ERL_ARGS": "+S 1:1"}, extra=True),
    dict(name="C1 only", what="all four JVMs compile with C1 only (-XX:TieredStopAtLevel=1): less JIT work, slower "
         "code", env={"KVMESH_JAVA_OPTS": "-Xmx512m -XX:TieredStopAtLevel=1"}, extra=True),
    # issue 18: four JVMs' resident memory (345-361 MB each with -Xmx512m, G1) against the goal of 160 MB
    dict(name="small heap SerialGC", what="all four JVMs with a 96 MB heap and the serial collector (-Xmx96m "
         "-XX:+UseSerialGC): no G1 regions, remembered sets or concurrent threads", env={"KVMESH_JAVA_OPTS":
         "-Xmx96m -XX:+UseSerialGC"}, extra=True),
    dict(name="small heap SerialGC lean", what="the same, plus a 48 MB code cache, 512 KB thread stacks and one "
         "processor's worth of GC and JIT threads (-XX:ReservedCodeCacheSize=48m -Xss512k "
         "-XX:CICompilerCount=2 -XX:+UseSerialGC -Xmx96m)", env={"KVMESH_JAVA_OPTS": "-Xmx96m -XX:+UseSerialGC "
         "-XX:ReservedCodeCacheSize=48m -Xss512k -XX:CICompilerCount=2"}, extra=True),
    dict(name="baseline again", what="the defaults once more, last: the run-to-run noise of this invocation"),
]
LEVER_SCENARIOS = ["REST GET", "REST PUT", "gRPC Get direct", "gRPC Put direct"]


def lever_by_name(name):
    for lv in LEVERS:
        if lv["name"] == name:
            return lv
    sys.exit(f"unknown lever {name!r}; levers: {', '.join(l['name'] for l in LEVERS)}")


def lever_env(name):
    lv = lever_by_name(name)
    return {k: (lv.get("env") or {}).get(k, "") for k in LEVER_VARS}


def merge_levers(parts, out):
    """One JSON for report.py from the per-configuration parts of one `run.sh levers` invocation."""
    docs = []
    for p in parts:
        with open(p) as f:
            docs.append(json.load(f))
    first = docs[0]
    doc = {k: first[k] for k in ("mode", "started", "settings", "concurrency", "value_bytes", "preloaded_keys",
                                 "machine", "versions")}
    doc["scenario_names"] = LEVER_SCENARIOS
    doc["configs"] = [{k: d.get(k) for k in ("lever", "what", "env", "runtime", "runtime_set_by", "started",
                                             "loadavg_at_start", "seconds", "scenarios", "missing", "memory_end")} for d in docs]
    doc["seconds"] = round(sum(d["seconds"] for d in docs), 1)
    doc["missing"] = [f"{d['lever']}: {m}" for d in docs for m in d["missing"]]
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    rows = [("lever", "scenario", "median/s", "min–max", "CPU µs/req (servers)", "warm-up", "others' CPU")]
    for c in doc["configs"]:
        for e in c["scenarios"]:
            m = e.get("median")
            if not m:
                rows.append((c["lever"], e["name"], "NO RESULT", (e.get("failure") or "")[:50], "", "", ""))
                continue
            r = e["range"].get("throughput", [0, 0])
            w = e.get("warmup") or {}
            rows.append((c["lever"], e["name"], f"{m['throughput']:,.0f}", f"{r[0]:,.0f}–{r[1]:,.0f}",
                         f"{server_us(m):,.0f}", f"{w.get('runs', 0)} {'ok' if w.get('converged') else 'not converged' if w.get('converged') is False else '-'}",
                         f"{m.get('others_cores', 0):.2f}"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, r in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return doc


def server_us(m):
    """CPU µs per request summed over the server processes (load generator left out)."""
    return sum((v.get("us_per_req") or 0.0) for g, v in (m.get("cpu") or {}).items() if g != "load generator")


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f} ms"


def summarise(entry):
    runs = entry["runs"]
    if not runs:
        entry["median"] = None
        return
    med, rng = {}, {}
    for key in ("throughput", "p50_ms", "p99_ms", "p999_ms", "errors", "machine_busy_cores", "others_cores"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            med[key] = statistics.median(vals)
            rng[key] = [min(vals), max(vals)]
    cpu = {}
    for g in runs[-1]["cpu"]:
        cores = [r["cpu"][g]["cores"] for r in runs if g in r["cpu"]]
        us = [r["cpu"][g]["us_per_req"] for r in runs if g in r["cpu"] and r["cpu"][g]["us_per_req"] is not None]
        cpu[g] = {"cores": round(statistics.median(cores), 3), "us_per_req": round(statistics.median(us), 2) if us else None}
    med["cpu"] = cpu
    for key in ("ops_per_message", "ops_per_transaction"):
        vals = [r["batching"][key] for r in runs if (r.get("batching") or {}).get(key) is not None]
        if vals:
            med[key] = statistics.median(vals)
    for key in ("p99_at_most_ms", "within_50ms"):
        vals = [r["apply_lag"][key] for r in runs if (r.get("apply_lag") or {}).get(key) is not None]
        if vals:
            med["apply_lag_" + key] = statistics.median(vals)
    servers = {g: v for g, v in cpu.items() if g != "load generator"}
    if servers:
        top = max(servers, key=lambda g: servers[g]["cores"])
        med["busiest_process"] = top
        med["busiest_cores"] = servers[top]["cores"]
    entry["median"] = med
    entry["range"] = rng


BATCH_METRICS = ("kvmesh_publish_batch_ops_sum", "kvmesh_publish_batch_ops_count",
                 "kvmesh_consumer_batch_size_operations_sum", "kvmesh_consumer_batch_size_operations_count")
LAG_BUCKET = re.compile(r'^kvmesh_consumer_apply_lag_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.eE+-]+)$')
METRIC_LINE = re.compile(r"^([a-z_]+)(?:\{[^}]*\})? ([0-9.eE+-]+)$")

RATIOS = [
    # (name, numerator scenario, denominator scenario, goal or None)
    ("REST GET / etcd JSON range", "REST GET", "etcd JSON range", 1.6),
    # issue 18: the ceiling that matters is the edge's own (nginx and Envoy cost about what etcd's whole range does)
    ("REST GET / edge ceiling", "REST GET", "edge ceiling (REST GET to a do-nothing KeyValue)", 0.8),
    # issue 17 withdrew DESIGN.md's 1.0x (nginx and Envoy alone cost about what etcd's whole put does) and set 0.5x
    ("REST PUT / etcd JSON put", "REST PUT", "etcd JSON put", 0.5),
    ("gRPC Put direct / etcd gRPC Put", "gRPC Put direct", "etcd gRPC Put", 0.8),
    ("gRPC Get direct / Redis GET", "gRPC Get direct", "redis GET", 0.35),
    ("gRPC Get via Envoy / etcd gRPC Range", "gRPC Get via Envoy", "etcd gRPC Range", None),
    ("gRPC Put via Envoy / etcd gRPC Put", "gRPC Put via Envoy", "etcd gRPC Put", None),
    ("REST GET / nginx return 200", "REST GET", "nginx return 200", None),
    ("REST GET / Envoy direct_response", "REST GET", "envoy direct_response", None),
    ("gRPC Put direct / RabbitMQ quorum confirms", "gRPC Put direct", "rabbitmq quorum confirms", None),
    ("REST PUT / RabbitMQ quorum confirms", "REST PUT", "rabbitmq quorum confirms", None),
]


def ratios(results):
    out = []
    for name, a, b, goal in RATIOS:
        ra, rb = results.get(a), results.get(b)
        if ra and rb and ra.get("median") and rb.get("median") and rb["median"]["throughput"]:
            v = ra["median"]["throughput"] / rb["median"]["throughput"]
            out.append(dict(name=name, value=round(v, 3), goal=goal, met=None if goal is None else v >= goal))
    return out


def machine_and_versions(env):
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
            lines = [l for l in p.stdout.splitlines() if l.strip()]
            return lines[0].strip() if lines else ""
        except Exception as ex:
            return f"unknown ({ex})"
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split(":")[1].strip()
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    root = env["ROOT"]
    envoy = os.environ.get("KVMESH_ENVOY_VENV", os.path.join(root, ".run/venv")) + "/bin/envoy"
    perf_jar = [j for j in os.listdir(env["PERFTEST_LIB"]) if j.startswith("perf-test-")]
    return dict(
        machine=dict(nproc=os.cpu_count(), cpu=model, memory=mem, kernel=platform.release(), loadavg_at_start=load),
        versions={
            "wrk": first_line(["wrk", "-v"]),
            "ghz": "v0.93.0 (go install github.com/bojand/ghz/cmd/ghz@latest, as served here)",
            "vegeta": "v12 (go install github.com/tsenart/vegeta/v12@latest)",
            "redis": first_line(["redis-server", "--version"]),
            "postgres": first_line(["pg_config", "--version"]) or first_line(["psql", "--version"]),
            "pgbench": first_line(["pgbench", "--version"]),
            "rabbitmq": first_line(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]),
            "perftest": perf_jar[0] if perf_jar else "",
            "etcd": first_line(["etcd", "--version"]),
            "nginx": first_line(["nginx", "-v"]),
            "envoy": first_line([envoy, "--version"]),
            "java": first_line([f"{env['JAVA_HOME']}/bin/java", "-version"]),
            "kvmesh commit": first_line(["git", "-C", root, "rev-parse", "--short", "HEAD"]),
        })


def etcd_reflection(env):
    """Whether etcd answers gRPC server reflection (why ghz needs ghz-bench/proto/etcd_kv.proto)."""
    p = subprocess.run(["ghz", "--insecure", "--call", "etcdserverpb.KV/Range", "-n", "1", "-d", "{}",
                        f"127.0.0.1:{env['ETCD_PORT']}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=30)
    msg = p.stdout.strip().splitlines()[-1:] or [""]
    return {"ghz_without_proto_exit": p.returncode, "message": msg[0][:200]}


def print_table(results):
    rows = [("scenario", "group", "median/s", "min–max", "p50 ms", "p99 ms", "p99.9 ms", "busiest process (cores)", "others' CPU")]
    for e in results.values():
        m = e.get("median")
        if not m:
            rows.append((e["name"], e["group"], "NO RESULT", e.get("failure", "")[:50], "", "", "", "", ""))
            continue
        r = e["range"].get("throughput", [0, 0])
        f = lambda v: "-" if v is None else f"{v:.2f}"
        rows.append((e["name"], e["group"], f"{m['throughput']:,.0f}", f"{r[0]:,.0f}–{r[1]:,.0f}",
                     f(m.get("p50_ms")), f(m.get("p99_ms")), f(m.get("p999_ms")),
                     f"{m.get('busiest_process', '-')} ({m.get('busiest_cores', 0):.2f})", f(m.get("others_cores"))))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


def run_lever(env, name, out):
    """The levers suite on a stack started with lever `name`'s environment: its Envoy runtime settings, then the
    main four scenarios; writes one part for --merge-levers."""
    lv = lever_by_name(name)
    t0 = time.time()
    # GHZ_BENCH_ONLY=name,name: only those of the main four (development; the result is then partial)
    b = Bench(env, {n.strip() for n in os.environ.get("GHZ_BENCH_ONLY", "").split(",") if n.strip()})
    doc = dict(mode=b.mode, lever=name, what=lv["what"], env=lever_env(name), runtime=lv.get("runtime") or {},
               started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), settings=b.m, concurrency=CONC,
               value_bytes=256, preloaded_keys=NKEYS, **machine_and_versions(env))
    doc["loadavg_at_start"] = doc["machine"]["loadavg_at_start"]
    log(f"lever: {name} ({lv['what']})")
    doc["runtime_set_by"] = b.envoy_runtime(lv.get("runtime"))
    b.preload()
    b.main_four()
    return write_result(doc, b, [b.results[n] for n in LEVER_SCENARIOS if n in b.results], out, t0)


def write_result(doc, b, scenarios, out, t0):
    """The end of a levers or scale run: each process's memory, the scenarios, the seconds taken and the scenarios
    with no number, written to out; the table printed."""
    doc["memory_end"] = b.memory()
    doc["scenarios"] = scenarios
    doc["seconds"] = round(time.time() - t0, 1)
    doc["missing"] = [e["name"] for e in doc["scenarios"] if not e.get("median") or not e["median"].get("throughput")]
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    print_table(b.results)
    return doc


# ---------------------------------------------------------------- scale (issue 18): a million keys

SCALE_CACHE_READS = re.compile(r'^kvmesh_cache_reads_total\{[^}]*source="(redis|postgres)"[^}]*\}\s+([0-9.eE+-]+)', re.M)


class Scale:
    """ghz-bench/run.sh scale: REST GET, PUT and List page 50 on 1,000 keys, then `kvctl load` of GHZ_SCALE_KEYS keys
    (256-byte values) through Envoy, the same scenarios again on the large store, then REST PUT at its maximum for
    GHZ_SCALE_OPLOG_S seconds with kv_oplog's row count sampled (the stack runs with a short retention,
    KVMESH_OPLOG_RETENTION_SECONDS, set by run.sh). Table and index sizes, Redis memory and the cache hit rate are
    taken after each phase."""

    def __init__(self, env):
        self.b = Bench(env, set())
        self.e = env
        self.keys = int(os.environ.get("GHZ_SCALE_KEYS") or 1_000_000)
        self.oplog_s = int(os.environ.get("GHZ_SCALE_OPLOG_S") or 600)
        self.retention_s = int(env.get("OPLOG_RETENTION_S") or 0)

    def psql(self, sql):
        cred = self.b.credentials()
        out = sh(["psql", "-h", "127.0.0.1", "-p", self.e["PG_PORT"], "-U", "postgres", "-d", "kvmesh", "-XAtqc", sql],
                 timeout=120, env={"PGPASSWORD": cred["KVMESH_PG_SUPERUSER_PASSWORD"]})
        return out.strip()

    def redis(self, *args):
        cred = self.b.credentials()
        return sh(["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", self.e["REDIS_PORT"], *args], timeout=60,
                  env={"REDISCLI_AUTH": cred.get("KVMESH_REDIS_PASSWORD", "")})

    def oplog_rows(self):
        return int(self.psql("SELECT count(*) FROM kv_oplog") or 0)

    def sizes(self):
        """Rows and on-disk sizes of kvmesh's tables (table, its indexes), Redis's memory and keys."""
        rows = self.psql("SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
                         "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'kv%' ORDER BY 1")
        tables = {}
        for line in rows.splitlines():
            name, est, table, idx = line.split("|")
            tables[name] = dict(rows_estimate=int(est), table_mb=round(int(table) / 2**20, 1),
                                indexes_mb=round(int(idx) / 2**20, 1))
        for name in tables:
            tables[name]["rows"] = int(self.psql(f"SELECT count(*) FROM {name}"))
        info = self.redis("INFO", "memory")
        used = re.search(r"^used_memory:(\d+)", info, re.M)
        return dict(postgres=tables, redis_used_mb=round(int(used.group(1)) / 2**20, 1) if used else None,
                    redis_keys=int(self.redis("DBSIZE").strip() or 0))

    def cache_reads(self):
        """Gets answered from Redis and from PostgreSQL so far, summed over the replicas."""
        texts = self.b.metrics_texts("KVMESH_REPLICA_ADMIN_PORTS") or []
        out = {"redis": 0.0, "postgres": 0.0}
        for text in texts:
            for src, v in SCALE_CACHE_READS.findall(text):
                out[src] += float(v)
        return out

    def phase(self, label, nkeys, gets):
        """The scenarios on a store of nkeys keys; gets: (suffix, key count the GETs draw from)."""
        b = self.b
        for suffix, draw in gets:
            before = self.cache_reads()
            name = f"REST GET · {label}{suffix}"
            b.point(name, "kvmesh", lambda d, n=draw: run_wrk(b.http, "kv_get.lua", d, {**b.wrk_env(), "WRK_KEYS": str(n)}),
                    keys=nkeys, draw_keys=draw)
            after = self.cache_reads()
            hits, misses = after["redis"] - before["redis"], after["postgres"] - before["postgres"]
            if name in b.results:
                b.results[name]["cache_hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
        b.point(f"REST PUT · {label}", "kvmesh", lambda d: run_wrk(b.http, "kv_put.lua", d, b.wrk_env()), keys=nkeys)
        b.drain(f"REST PUT · {label}")
        b.point(f"REST List page 50 · {label}", "kvmesh",
                lambda d: run_wrk(b.http, "kv_list.lua", d, {**b.wrk_env(), "WRK_KEYS": str(nkeys)}), keys=nkeys)

    def load(self):
        """kvctl load of self.keys JSON lines bget-0 .. (the first 1,000 are the preloaded keys, written again), 256-byte
        values, through Envoy; the rate kvctl reports (every put acknowledged durable: broker-confirmed), then the
        seconds until the consumers applied all of it, with kv_oplog's rows sampled every 10 s."""
        path = os.path.join(self.b.run_dir, "scale-load.jsonl")
        with open(path, "w") as f:
            for i in range(self.keys):
                f.write(f'{{"key":"bget-{i}","value":"{VALUE}"}}\n')
        kvctl = os.path.join(self.e["ROOT"], "kvctl")
        cmd = [kvctl, "--endpoint", f"127.0.0.1:{self.e['ENVOY_PORT']}", "--json", "load", "--no-progress", path]
        if os.environ.get("KVMESH_BENCH_TOKEN"):
            cmd[1:1] = ["--token", os.environ["KVMESH_BENCH_TOKEN"]]
        log(f"scale: kvctl load of {self.keys:,} keys")
        samples = []
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while p.poll() is None and time.time() - t0 < 3600:
            time.sleep(10)
            samples.append(dict(s=round(time.time() - t0, 1), oplog_rows=self.oplog_rows()))
        out, err = p.communicate(timeout=60)
        acked_s = time.time() - t0
        summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        log(f"  kvctl load: {summary} (rc {p.returncode}); {err.strip()[-300:]}")
        self.b.drain("scale load", limit=1800)
        applied_s = time.time() - t0
        return dict(command=shlex.join(["./kvctl", *cmd[1:-1], "scale-load.jsonl"]), keys=self.keys, value_bytes=256,
                    rc=p.returncode, summary=summary, acked_seconds=round(acked_s, 1),
                    rate_acked=round(summary.get("written", 0) / summary["elapsedSeconds"], 1)
                    if summary.get("elapsedSeconds") else None,
                    applied_seconds=round(applied_s, 1), rate_applied=round(self.keys / applied_s, 1),
                    oplog_samples=samples)

    def sustained_put(self):
        """REST PUT (wrk, 64 connections) at its maximum for self.oplog_s seconds, kv_oplog's rows every 15 s: with
        retention R they must level off near the write rate × R, not grow with time."""
        b = self.b
        log(f"scale: REST PUT for {self.oplog_s}s, kv_oplog sampled (retention {self.retention_s}s)")
        with open(os.path.join(BENCH, "wrk", "common.lua")) as f:
            common = f.read()
        with open(os.path.join(BENCH, "wrk", "kv_put.lua")) as f:
            body = f.read()
        script = os.path.join(b.run_dir, "scale-put.lua")
        with open(script, "w") as f:
            f.write(common + "\n" + body)
        t0 = time.time()
        p = subprocess.Popen(["wrk", "-t2", f"-c{CONC}", f"-d{self.oplog_s}s", "--timeout", "10s", "-s", script, b.http],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **b.wrk_env()})
        samples = []
        while p.poll() is None and time.time() - t0 < self.oplog_s + 120:
            samples.append(dict(s=round(time.time() - t0, 1), oplog_rows=self.oplog_rows()))
            time.sleep(15)
        out, _ = p.communicate(timeout=120)
        m = re.search(r"^WRKJSON (.*)$", out, re.M)
        res = json.loads(m.group(1)) if m else {}
        rate = res.get("requests", 0) / (res.get("duration_us", 1) / 1e6) if res else None
        b.drain("scale sustained PUT", limit=600)
        samples.append(dict(s=round(time.time() - t0, 1), oplog_rows=self.oplog_rows()))
        bound = round(rate * (self.retention_s + 10)) if rate and self.retention_s else None
        tail = [x["oplog_rows"] for x in samples if x["s"] >= self.retention_s + 60]
        return dict(seconds=self.oplog_s, retention_s=self.retention_s, put_rate=round(rate, 1) if rate else None,
                    errors=sum(v for k, v in res.items() if k.startswith("errors_")) if res else None,
                    samples=samples, bound_rows=bound, max_rows_after_retention=max(tail) if tail else None,
                    bounded=(max(tail) <= bound) if tail and bound else None)

    def wait_quiet(self, limit=900, idle_cores=0.1):
        """After the load, PostgreSQL deletes its log rows once they pass the retention and autovacuum visits the
        tables: work that would be billed to the scenarios that follow (the first scale run measured GETs while
        PostgreSQL spent 162-266 µs per request on it, every Get a cache hit). Waits until the retention has passed,
        the log holds no row from before it, and PostgreSQL used at most idle_cores over 10 s (at most limit s)."""
        t0 = time.time()
        log(f"scale: waiting for PostgreSQL to finish the load's aftermath (retention {self.retention_s}s)")
        time.sleep(min(limit, self.retention_s + 15))
        cores = None
        while time.time() - t0 < limit:
            old = int(self.psql(f"SELECT count(*) FROM kv_oplog WHERE apply_time < now() - interval "
                                f"'{self.retention_s + 5} seconds'") or 0)
            before = self.b.cpu.sample()
            time.sleep(10)
            after = self.b.cpu.sample()
            cores = CpuGroups.delta(before, after, 10, 0).get("postgres", {}).get("cores")
            if old == 0 and cores is not None and cores <= idle_cores:
                break
        waited = round(time.time() - t0, 1)
        log(f"  quiet after {waited}s (PostgreSQL {cores} cores over the last 10 s)")
        return dict(seconds=waited, postgres_cores=cores)

    def run(self, out):
        b = self.b
        t0 = time.time()
        doc = dict(mode=b.mode, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), settings=b.m,
                   concurrency=CONC, value_bytes=256, keys=self.keys, **machine_and_versions(self.e))
        b.preload()
        self.phase(f"{NKEYS:,} keys", NKEYS, [("", NKEYS)])
        doc["small"] = self.sizes()
        doc["load"] = self.load()
        doc["large"] = self.sizes()
        doc["quiet_after_load"] = self.wait_quiet()
        label = f"{self.keys:,} keys"
        self.phase(label, self.keys, [(" (hot: the first 1,000)", NKEYS), (" (uniform over all)", self.keys)])
        doc["large_after"] = self.sizes()
        doc["sustained_put"] = self.sustained_put()
        return write_result(doc, b, list(b.results.values()), out, t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", help="bench.env written by run.sh")
    ap.add_argument("--out", help="the result JSON")
    ap.add_argument("--only", default="")
    ap.add_argument("--list-levers", action="store_true",
                    help="print the lever configurations, one a line (only those in $GHZ_BENCH_LEVERS when set)")
    ap.add_argument("--lever-env", metavar="LEVER", help="print LEVER's environment as NUL-terminated NAME=VALUE")
    ap.add_argument("--lever", metavar="LEVER", help="run the levers suite on a stack started with LEVER's environment")
    ap.add_argument("--merge-levers", nargs="+", metavar="PART", help="merge the parts of a levers run into --out")
    ap.add_argument("--scale", action="store_true", help="the scale run (ghz-bench/run.sh scale)")
    a = ap.parse_args()
    if a.list_levers:
        wanted = [x.strip() for x in os.environ.get("GHZ_BENCH_LEVERS", "").split(",") if x.strip()]
        for n in wanted:
            lever_by_name(n)
        for lv in LEVERS:
            if lv["name"] in wanted or (not wanted and not lv.get("extra")):
                print(lv["name"])
        return
    if a.lever_env:
        sys.stdout.write("".join(f"{k}={v}\0" for k, v in lever_env(a.lever_env).items()))
        return
    if not a.out:
        ap.error("--out is required")
    if a.merge_levers:
        doc = merge_levers(a.merge_levers, a.out)
        print()
        if doc["missing"]:
            print(f"[bench] lever points with no number: {', '.join(doc['missing'])}")
            sys.exit(1)
        print(f"[bench] levers: every point produced numbers ({len(doc['configs'])} configurations, {doc['seconds']}s)")
        return
    if not a.env:
        ap.error("--env is required")
    env = read_env(a.env)
    if a.scale:
        doc = Scale(env).run(a.out)
        if doc["missing"] or doc["load"].get("rc"):
            print(f"[bench] scale: scenarios with no number: {', '.join(doc['missing'])}; load rc {doc['load'].get('rc')}")
            sys.exit(1)
        return
    if a.lever:
        doc = run_lever(env, a.lever, a.out)
        if doc["missing"]:
            print(f"[bench] {a.lever}: scenarios with no number: {', '.join(doc['missing'])}")
            sys.exit(1)
        return
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    t0 = time.time()
    b = Bench(env, only)
    doc = dict(mode=b.mode, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), settings=b.m,
               concurrency=CONC, value_bytes=256, preloaded_keys=NKEYS, **machine_and_versions(env))
    doc["etcd_reflection"] = etcd_reflection(env)
    doc["etcd_grpc_put_keys"] = "egput-0..999 (not the keys read)"
    doc["open_loop_after_closed"] = True   # each open-loop series right after its own closed-loop point
    b.preload()
    b.point("idle (no load)", "baseline", b.idle, warm=False)
    b.ceilings()
    b.kvmesh()
    b.etcd_scenarios()
    doc["memory_end"] = b.memory()
    doc["scenarios"] = list(b.results.values())
    doc["ratios"] = ratios(b.results)
    doc["seconds"] = round(time.time() - t0, 1)
    missing = [e["name"] for e in doc["scenarios"]
               if not e.get("median") or (not e["median"].get("throughput") and e["group"] != "baseline")
               or (e["group"] == "baseline" and not e["median"].get("cpu"))]
    # wrk counts refused requests (401, 403, 5xx) as requests: a kvmesh closed-loop scenario whose runs were mostly
    # refused measured nothing (e.g. a token not sent). The lag probes fail writes on purpose when saturated.
    missing += [e["name"] + " (mostly errors)" for e in doc["scenarios"]
                if e.get("group") == "kvmesh" and e.get("runs") and not e["name"].startswith("write-visible lag")
                and all(r.get("errors", 0) > 0.5 * max(1, r.get("requests", 0)) for r in e["runs"])]
    doc["missing"] = missing
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    print_table(b.results)
    print()
    for r in doc["ratios"]:
        goal = "" if r["goal"] is None else f"  (goal ≥ {r['goal']}: {'met' if r['met'] else 'NOT met'})"
        print(f"  {r['name']}: {r['value']:.2f}{goal}")
    print()
    if missing:
        print(f"[bench] scenarios with no number: {', '.join(missing)}")
        sys.exit(1)
    print(f"[bench] every scenario produced numbers ({len(doc['scenarios'])} points, {doc['seconds']}s)")


if __name__ == "__main__":
    main()
