#!/usr/bin/env python3
"""The broker grown under a stack with data, and a shrink refused (issue 19, item 1); `scripts/faults.sh cluster`
runs it around its cluster phases.

  grow.py queue  --root R --run-dir D --state F [--count N]   the consumers stopped, N ASYNC writes through nginx,
                                                               each acknowledged and still queued; written to F
  grow.py kill-broker --root R --run-dir D --state F          kill -9 of every RabbitMQ node at once (their beam.smp),
                                                               left to supervisord to start again in whatever order
  grow.py verify --root R --run-dir D --state F --nodes K      after the stack came back (grown to K nodes, or
                                                               refused a shrink and started as it was): every write
                                                               of F applied exactly once with its value, and every
                                                               quorum queue has a member on each of the K nodes

Exit 0 when everything held, 1 otherwise. Python standard library only, as the rest of the fault suite.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api import Api, classify_write  # noqa: E402
from stack import Stack, wait_until  # noqa: E402


def say(msg: str) -> None:
    print(f"[grow] {msg}", flush=True)


def queued_ops(st: Stack) -> int:
    return sum(n for q, n in st.queue_depths().items() if ".ops." in q and not q.endswith(".dead"))


def cmd_queue(st: Stack, state: str, count: int) -> int:
    consumers = [f"kv-consumer-{i}" for i in range(1, st.consumers + 1)]
    say(st._supervisorctl("stop", *consumers))
    prefix = f"grow-{uuid.uuid4().hex[:8]}/"
    api, writes = Api(st.http_port), {}
    for i in range(count):
        key, value = f"{prefix}{i:04d}", f"queued before the broker grew #{i}"
        outcome, status, op_id, _ = classify_write(api.put(key, value, None, "ASYNC", "kv"))
        if outcome != "acked" or not op_id:
            say(f"FAIL: write {key} not acknowledged ({outcome}, {status})")
            return 1
        writes[key] = {"value": value, "op_id": op_id}
    if not wait_until(lambda: queued_ops(st) >= count, 30):
        say(f"FAIL: {count} writes acknowledged but only {queued_ops(st)} operations queued")
        return 1
    with open(state, "w", encoding="utf-8") as f:
        json.dump({"prefix": prefix, "writes": writes}, f)
    say(f"{count} writes acknowledged and queued, not applied (consumers stopped): {queued_ops(st)} in the queues")
    return 0


def cmd_kill_broker(st: Stack) -> int:
    pids = {part: st.find_pid(part) for part in st.rabbit_parts()}
    if not all(pids.values()):
        say(f"FAIL: not every node runs: {pids}")
        return 1
    for pid in pids.values():
        st.kill9(pid)
    say(f"kill -9 of every node at once: {pids}")
    return 0


def cmd_verify(st: Stack, state: str, nodes: int) -> int:
    with open(state, encoding="utf-8") as f:
        saved = json.load(f)
    prefix, writes = saved["prefix"], saved["writes"]
    ok = True
    where = f"left(key, {len(prefix)}) = '{prefix}'"

    def applied() -> int:
        return int(st.psql(f"SELECT count(*) FROM kv WHERE {where}")[0][0])
    t0 = time.monotonic()
    if not wait_until(lambda: applied() >= len(writes), 60):
        say(f"FAIL: {applied()} of {len(writes)} acknowledged writes applied after 60 s")
        ok = False
    rows = {r[0]: r for r in st.psql(f"SELECT key, value, version FROM kv WHERE {where}")}
    oplog = st.psql(f"SELECT key, id, count(*) OVER (PARTITION BY id) FROM kv_oplog WHERE {where}")
    lost = [k for k, w in writes.items() if k not in rows or rows[k][1] != w["value"]]
    twice = sorted({r[0] for r in oplog if int(r[2]) > 1} | {k for k, r in rows.items() if r[2] != "1"})
    missing_ops = [k for k, w in writes.items() if w["op_id"] not in {r[1] for r in oplog}]
    if lost or twice or missing_ops:
        ok = False
        say(f"FAIL: lost or wrong {lost[:5]}, applied twice {twice[:5]}, no kv_oplog row {missing_ops[:5]}")
    else:
        say(f"all {len(writes)} writes applied exactly once with their values ({time.monotonic() - t0:.1f} s)")
    queues = st.quorum_queues()
    short = {q: len(v["members"]) for q, v in queues.items() if len(v["members"]) != nodes}
    if not queues or short:
        ok = False
        say(f"FAIL: quorum queues without a member on each of the {nodes} nodes: {short or 'no queues listed'}")
    else:
        say(f"{len(queues)} quorum queues, each with {nodes} member(s)")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=("queue", "kill-broker", "verify"))
    p.add_argument("--root", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--nodes", type=int, default=1)
    a = p.parse_args()
    st = Stack(a.root, a.run_dir)
    if a.command == "queue":
        return cmd_queue(st, a.state, a.count)
    if a.command == "kill-broker":
        return cmd_kill_broker(st)
    return cmd_verify(st, a.state, a.nodes)


if __name__ == "__main__":
    sys.exit(main())
