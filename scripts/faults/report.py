"""Results: a verdict per phase, the table on the terminal, the JSON file and docs/reliability.md."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess

from context import GOAL_S

COLUMNS = ("fault", "acked", "failed", "unknown", "lost", "duplicated", "stale", "s unavailable",
           "recovered by itself", "result")

# problem text prefix -> the short name used in the result column
PROBLEM_KINDS = (("versions of", "version gaps"), ("kv.version", "final version"), ("kv.value", "final value"),
                 ("order:", "real-time order"), ("redis", "Redis != PostgreSQL"), ("could not read Redis", "Redis"),
                 ("cache entries", "cache format"), ("API GET", "API != PostgreSQL"),
                 ("read ", "reads of unapplied values"), ("SYNC answer", "SYNC version"))


def verdict(p: dict) -> list[str]:
    """Short names of everything that failed in phase P (empty = passed)."""
    out = []
    if p["lost"]:
        out.append("lost writes")
    if p["duplicated"]:
        out.append("applied twice")
    if p["stale"]:
        out.append("stale reads")
    if p.get("drained") is False:
        out.append("not drained")
    if p.get("recovered") is False:
        out.append("no self-recovery")
    elif p.get("recovery_s") is not None and p["recovery_s"] > GOAL_S:
        out.append(f"recovery > {GOAL_S:.0f}s")
    out += [name for name, c in p.get("checks", {}).items() if not c["ok"]]
    for text in p.get("problems", []):
        for prefix, name in PROBLEM_KINDS:
            if text.startswith(prefix) and name not in out:
                out.append(name)
    return out


def recovered_cell(p: dict) -> str:
    if p.get("recovered") is None:
        return "-"
    if p["recovered"]:
        return f"yes, {p['recovery_s']:.1f}s" if p["recovery_s"] <= GOAL_S else f"late, {p['recovery_s']:.1f}s"
    return "no"


def row(p: dict) -> list[str]:
    fails = p["failures"]
    unavailable = p.get("unavailable_s")
    return [p["title"], f"{p['acked']:,}", f"{p['failed']:,}", f"{p['unknown']:,}", f"{p['lost']:,}",
            f"{p['duplicated']:,}", f"{p['stale']:,}", "-" if unavailable is None else f"{unavailable:.1f}",
            recovered_cell(p),
            "ok" if not fails else "FAIL: " + "; ".join(fails)]


def text_table(phases: list[dict]) -> str:
    rows = [list(COLUMNS)] + [row(p) for p in phases]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join(cells) + "  " + r[-1])
    return "\n".join(lines)


def markdown_table(phases: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for p in phases:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row(p)) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_gb = int(f.readline().split()[1]) / (1 << 20)
    except (OSError, ValueError):
        mem_gb = 0
    distro = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            distro = next((line.split("=", 1)[1].strip().strip('"') for line in f
                           if line.startswith("PRETTY_NAME")), "")
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GB RAM, {distro or platform.system()}, "
            f"kernel {platform.release()}")


def git_commit(root: str) -> str:
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def write_json(path: str, result: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def load_line(result: dict) -> str:
    load = result.get("load_average")
    if not load:
        return ""
    return (f"Load average {load[0]:.1f} at the start and {load[1]:.1f} at the end of the run on {os.cpu_count()} "
            "cores: other work shared the machine, which shows in the counts and the seconds unavailable.\n")


CLUSTER_BEGIN = "<!-- rabbitmq-cluster: written by scripts/faults.sh cluster -->"
CLUSTER_END = "<!-- /rabbitmq-cluster -->"


def _cluster_section(path: str) -> str:
    """The RabbitMQ cluster section of the existing doc (kept when the rest is written again), or ""."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return ""
    start, end = text.find(CLUSTER_BEGIN), text.find(CLUSTER_END)
    return text[start:end + len(CLUSTER_END)] if 0 <= start < end else ""


def write_cluster_section(path: str, result: dict) -> None:
    """The section of docs/reliability.md on the 3-node RabbitMQ cluster (scripts/faults.sh cluster); the rest of
    the file stays as it is."""
    from faults import NODE_BACK_S, PAUSE_GOAL_S
    rows = ["| node killed (kill -9) | acked | refused | lost | applied twice | refused within | longest interval "
            "without an ack | slowest ack | **pause** | probe unavailable | API back | node back | result |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for p in result["phases"]:
        f = p.get("figures", {})
        killed = next((n.split()[2] for n in p["notes"] if n.startswith("kill -9 ")), "?")

        def s(key: str) -> str:
            return f"{f[key]:.1f} s" if key in f else "-"
        rows.append(f"| {killed} ({p['title']}) | {p['acked']:,} | {p['failed'] + p['unknown']:,} | {p['lost']} | "
                    f"{p['duplicated']} | {s('refused_span_s')} | {s('gap_s')} | {s('slowest_ack_s')} | "
                    f"**{s('pause_s')}** | {p.get('unavailable_s') or 0:.1f} s | "
                    f"{p['recovery_s'] if p['recovery_s'] is not None else '-'} s | {s('node_back_s')} | "
                    f"{'ok' if p['ok'] else 'FAIL: ' + '; '.join(p['failures'])} |")
    total = result["total"]
    worst = max((p.get("figures", {}).get("pause_s", 0.0) for p in result["phases"]), default=0.0)
    section = f"""{CLUSTER_BEGIN}
## RabbitMQ cluster: a node killed, then another

`{result['command']}` on {result['finished_utc']} — {result['machine']} — commit {result['commit']}.
{"Every check passed." if result['ok'] else "**Some checks failed.**"}
{load_line(result)}
The stack with `KVMESH_RABBITMQ_NODES=3`: three RabbitMQ nodes on loopback (own ports, data folders, one Erlang cookie,
classic-config peer discovery), each a supervisord program; every partition queue a quorum queue with a member on
each node; kv-service and kv-consumer know every node's address (`KVMESH_AMQP_ADDRESSES`) and reconnect to another
one. Under the same load as the fault suite ({result['config']['writers']} writers, {result['config']['readers']}
readers through nginx, 80 % SYNC writes), node 1 is killed with `kill -9`; once supervisord has restarted it and every
queue is whole again, the node then leading most partition queues is killed the same way.

{chr(10).join(rows)}

In all: {total['acked']:,} writes acknowledged, **{total['lost']} lost, {total['duplicated']} applied twice** (every
acknowledged write has exactly one `APPLIED` row in `kv_oplog` after the drain), {total['failed']:,} refused and
{total['unknown']:,} unanswered (clients retry those with the same request id), {total['stale']} stale reads.

- **pause** = the longest of: the interval without any acknowledged write, the slowest acknowledged write (a writer
  whose partition queue had its leader on the killed node waits for the new leader while the other partitions go on),
  and the time from the first to the last refused write (**refused within**). Documented bound: **{PAUSE_GOAL_S:.0f} s**
  (checked); measured worst here: **{worst:.1f} s**. **probe unavailable**: seconds the availability probe (an ASYNC
  put and a get, 3 s timeout, every 0.25 s) failed.
- **refused**: writes answered with an error (UNAVAILABLE: the replica's broker connection or event stream was on the
  killed node, or the publish could not be confirmed) — never acknowledged, so never owed.
- Where the pause comes from: a partition queue whose leader was on the killed node elects a new one among the two
  others; publishes to it wait meanwhile (about 5 s at most here, the slowest acknowledged write) or, when the
  broker nacks them, are refused. The publisher's confirm timeout (`KVMESH_CONFIRM_TIMEOUT_MS`, 5 s) turns a longer
  wait into a refusal, never into an acknowledgement. Partitions led elsewhere go on at once.
- **API back**: two availability probes in a row succeed after the kill; **node back**: the killed node runs again and
  answers (bound {NODE_BACK_S:.0f} s), then every quorum queue has all three members online before the next kill.

Not part of `./test.sh`'s default run (it starts a stack of its own, about 3 minutes): `./test.sh --cluster` runs it.
{CLUSTER_END}"""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        text = ""
    old = _cluster_section(path)
    text = text.replace(old, section) if old else text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_doc(path: str, result: dict) -> None:
    """docs/reliability.md from one run's result (its RabbitMQ cluster section, if any, is kept)."""
    if result.get("mode") == "cluster":
        write_cluster_section(path, result)
        return
    cluster = _cluster_section(path)
    phases = result["phases"]
    failing = [p for p in phases if p["failures"]]
    findings = []
    for p in failing:
        items = [f"**{p['title']}**: {'; '.join(p['failures'])}."]
        details = [c["detail"] for c in p["checks"].values() if not c["ok"] and c["detail"]]
        details += p["problems"][:4]
        details += [n for n in p["notes"] if n.startswith(("not recovered", "the killed", "repair:"))]
        items += [f"  - {d}" for d in details[:8]]
        findings.append("\n".join(f"- {items[0]}" if i == 0 else line for i, line in enumerate(items)))
    checks = []
    for p in phases + [result["total"]]:
        for name, c in p["checks"].items():
            checks.append(f"- {p['title']}: {name}: {'ok' if c['ok'] else '**FAILED**'}"
                          f"{' (' + c['detail'] + ')' if c['detail'] else ''}")
        checks += [f"- {p['title']}: {n}" for n in p["notes"]
                   if n.startswith(("wrote ", "resident memory", "the API served again", "./start.sh ", "SIGCONT"))]
    total = result["total"]
    text = f"""# Reliability under faults

`{result['command']}` on {result['finished_utc']} — {result['machine']} — commit {result['commit']}.
{"Every check passed." if result['ok'] else "**Some checks failed** (see the findings below the table)."}
{load_line(result)}

{markdown_table(phases)}

Load: {result['config']['writers']} writers and {result['config']['readers']} readers through nginx on \
{result['config']['keys']} keys (both route families, 80 % SYNC writes, a few deletes, every write with its own request \
id), an availability probe every 0.25 s, one fault at a time. In all: {total['acked']:,} writes acknowledged, \
{total['failed']:,} failed, {total['unknown']:,} unknown; {total['reads']:,} reads checked; {total['lost']} lost, \
{total['duplicated']} applied twice, {total['stale']} stale; {total['failed_applied']} writes that answered an error \
and {total['unknown_applied']} without an answer were applied (once each), which is why clients retry with the same \
request id.

How to read it (the rules are in `scripts/faults/verify.py`):
- **acked / failed / unknown**: writes sent during the phase that were acknowledged (`queued`/`applied` with an
  operation id), answered with an error (or never connected), or sent without an answer (timeout, reset).
- **lost**: acknowledged writes without an `APPLIED` row for their operation id and key in `kv_oplog` after the drain.
- **duplicated**: request ids applied more than once, plus applied rows no request of the run asked for.
- **stale**: reads that returned a version older than a SYNC write acknowledged `applied` before the read started
  (README allows none after a Redis restart; the Redis phases also write a set of keys before and during the fault
  and then read them again and again, so a cache that comes back with older versions cannot go unseen).
- **s unavailable**: seconds during which the probe (an ASYNC put and a get through nginx, 3 s timeout) failed.
- **recovered by itself**: the killed part runs again and the API serves (two probes in a row), nobody acting, within
  {GOAL_S:.0f} s (DESIGN.md); for a stopped server, the API serving again after the server was started. When this does
  not happen the suite restarts the part as a person would, so later phases run on a whole stack. For a frozen
  process (SIGSTOP for the time in its title, then SIGCONT; nothing dies, its connections stay open): the API serving
  after SIGCONT; the checks below say when it served again while the process was still frozen.
- After each phase the load pauses, the suite waits until every acknowledged write is in `kv_oplog`, then checks over all
  keys: versions 1..N without gaps, real-time order, `kv` = the write applied last, Redis = PostgreSQL, the API =
  PostgreSQL, reads returned applied (version, value) pairs. A problem is counted in the phase where it first shows.

The phases' own checks (freezes, the rolling upgrade, slow watchers, request-id reuse) and the final ones:

{chr(10).join(checks)}

## Findings

{chr(10).join(findings) if findings else "None."}

Regenerate: `scripts/faults.sh full` (about {result['duration_min']:.0f} minutes here; `quick` runs a few faults and is
part of `./test.sh`). Every number above is in `{result['json_path']}`.
"""
    if cluster:
        text = text.rstrip("\n") + "\n\n" + cluster + "\n"
    text += kept_sections(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def kept_sections(path: str) -> str:
    """Sections other tests write into the same page (scripts/pg-switchover-test.sh): each between its own
    `<!-- BEGIN name -->` and `<!-- END name -->` lines, carried over as they are."""
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except OSError:
        return ""
    spans = [m.group(0) for m in re.finditer(r"^<!-- BEGIN ([\w-]+) -->$.*?^<!-- END \1 -->$", old, re.M | re.S)]
    return "".join("\n" + b + "\n" for b in spans)
