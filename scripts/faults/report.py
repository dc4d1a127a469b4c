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


def write_doc(path: str, result: dict) -> None:
    """docs/reliability.md from one run's result."""
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
        checks += [f"- {p['title']}: {n}" for n in p["notes"] if n.startswith(("wrote ", "resident memory"))]
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
  not happen the suite restarts the part as a person would, so later phases run on a whole stack.
- After each phase the load pauses, the suite waits until every acknowledged write is in `kv_oplog`, then checks over all
  keys: versions 1..N without gaps, real-time order, `kv` = the write applied last, Redis = PostgreSQL, the API =
  PostgreSQL, reads returned applied (version, value) pairs. A problem is counted in the phase where it first shows.

The probes' own checks (slow watchers, request-id reuse) and the final ones:

{chr(10).join(checks)}

## Findings

{chr(10).join(findings) if findings else "None."}

Regenerate: `scripts/faults.sh full` (about {result['duration_min']:.0f} minutes here; `quick` runs a few faults and is
part of `./test.sh`). Every number above is in `{result['json_path']}`.
"""
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
