#!/usr/bin/env python3
"""The checker's own test: a made-up history and made-up store contents with one of each problem the verification
must find (a lost write, a write applied twice, a version gap, a real-time order violation, a stale read, Redis
behind PostgreSQL, a wrong final value), a clean one where it must find nothing, and how answers are classified.
scripts/faults.sh runs it before it starts a stack, so a checker that cannot see a problem never reports a clean run.

  python3 scripts/faults/selftest.py
"""
from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from api import Answer, classify_write  # noqa: E402
from context import CONFIGS, Ctx, Phase  # noqa: E402
from history import History, Read, Write  # noqa: E402
from verify import Verifier  # noqa: E402

P = "fx/t/"


class FakeStack:
    """PostgreSQL, Redis and nothing else, from lists."""

    # one partition, whose cache permit is in force under epoch 3 until long after TIME
    env = {"KVMESH_PARTITIONS": "1"}
    permits = {"kv:p:0123456789ab:0": "3:1800000060000:consumer"}

    def __init__(self, oplog, kv, cache):
        self.oplog, self.kv, self.cache = oplog, kv, cache

    def psql(self, sql, timeout=60):
        if "FROM kv_oplog" in sql:
            return [[i, k, kind, str(v), "APPLIED", rid, str(t), "f"] for i, k, kind, v, rid, t in self.oplog]
        return [[k, str(v), "t" if val is None else "f", val or ""] for k, (val, v) in self.kv.items()]

    def redis(self, *args, timeout=5):
        if args[0] == "INFO":
            return "# Server\r\nrun_id:0123456789abcdef\r\n"
        if args[0] == "TIME":
            return ["1800000000", "0"]
        return self.permits.get(args[1], self.cache.get(args[1]))

    def redis_scan(self, match):
        return list(self.cache)


class FakeApi:
    """Answers what PostgreSQL holds, like a healthy stack."""

    def __init__(self, kv):
        self.kv = kv

    def get(self, key, family="kv", timeout=10):
        if key in self.kv and self.kv[key][0] is not None:
            val, ver = self.kv[key]
            return Answer(True, 200, {"data": {"key": key, "value": val, "version": str(ver)}, "source": "redis"})
        return Answer(True, 404, {"code": 5})


def put(rid, key, t_send, t_done, outcome="acked", status="queued", op="", version=None, mode="ASYNC"):
    return Write(rid=rid, key=P + key, kind="PUT", value=f"{rid}|x", mode=mode, family="kv", source="load",
                 t_send=t_send, t_done=t_done, outcome=outcome, status=status, op_id=op, version=version)


def verify(writes, reads, oplog, kv, cache):
    h = History(writes=writes, reads=reads)
    kv = {P + k: v for k, v in kv.items()}
    stack = FakeStack([(i, P + k, kind, v, rid, t) for i, k, kind, v, rid, t in oplog], kv, cache)
    ctx = Ctx(CONFIGS["quick"], stack, FakeApi(kv), h, None, "t", P)
    return Verifier(ctx).verify(Phase("t", "test", "kill", t_start=0.0), 0.0, 100.0)


class VerificationFindsProblems(unittest.TestCase):
    def test_clean_history_has_no_problem(self):
        res = verify(
            [put("r1", "a", 1.0, 1.1, status="applied", op="o1", version=1, mode="SYNC"),
             put("r2", "a", 1.2, 1.3, op="o2")],
            [Read(P + "a", "kv", "load", 1.15, 1.16, 200, 1, "r1|x")],
            [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 2, "r2", 1.4)],
            {"a": ("r2|x", 2)}, {"kv:v:01234567:" + P + "a": "3:2|L|1|1||r2|x"})
        self.assertEqual((res["lost"], res["duplicated"], res["stale"]), (0, 0, 0))
        self.assertEqual(res["problems"], [])

    def test_lost_write(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1)], {"a": ("r1|x", 1)}, {})
        self.assertEqual(res["lost"], 1)

    def test_write_acknowledged_for_another_key_is_lost(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r1", "b", 1.2, 1.3, op="o1")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1)], {"a": ("r1|x", 1)}, {})
        self.assertEqual(res["lost"], 1)

    def test_applied_twice(self):
        res = verify([put("r1", "a", 1.0, 1.1, outcome="unknown", status="TimeoutError")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o1b", "a", "PUT", 2, "r1", 1.2)], {"a": ("r1|x", 2)}, {})
        self.assertEqual(res["duplicated"], 1)

    def test_version_gap(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 3, "r2", 1.4)], {"a": ("r2|x", 3)}, {})
        self.assertTrue(any(p.startswith("versions of") for p in res["problems"]), res["problems"])

    def test_real_time_order(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 2, "r1", 1.4), ("o2", "a", "PUT", 1, "r2", 1.3)], {"a": ("r1|x", 2)}, {})
        self.assertTrue(any(p.startswith("order:") for p in res["problems"]), res["problems"])

    def test_stale_read(self):
        res = verify([put("r1", "a", 1.0, 1.1, status="applied", op="o1", version=2, mode="SYNC")],
                     [Read(P + "a", "kv", "load", 1.2, 1.3, 200, 1, "r0|x"),
                      Read(P + "a", "kv", "load", 1.05, 1.3, 200, 1, "r0|x")],   # started before the ack: fine
                     [("o0", "a", "PUT", 1, "r0", 0.5), ("o1", "a", "PUT", 2, "r1", 1.05)], {"a": ("r1|x", 2)}, {})
        self.assertEqual(res["stale"], 1)

    def test_missing_key_after_an_applied_write_is_stale(self):
        res = verify([put("r1", "a", 1.0, 1.1, status="applied", op="o1", version=1, mode="SYNC")],
                     [Read(P + "a", "kv", "load", 1.2, 1.3, 404, None, None)],
                     [("o1", "a", "PUT", 1, "r1", 1.05)], {"a": ("r1|x", 1)}, {})
        self.assertEqual(res["stale"], 1)

    def test_redis_behind_postgres(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 2, "r2", 1.4)], {"a": ("r2|x", 2)},
                     {"kv:v:" + P + "a": "3:1|L|1|1||r1|x"})
        self.assertTrue(any(p.startswith("redis") for p in res["problems"]), res["problems"])

    def test_entries_under_a_lapsed_epoch_are_not_compared(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 2, "r2", 1.4)], {"a": ("r2|x", 2)},
                     {"kv:v:" + P + "a": "2:1|L|1|1||r1|x"})
        self.assertEqual(res["problems"], [])

    def test_an_entry_in_an_unknown_format_is_reported(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1")], [], [("o1", "a", "PUT", 1, "r1", 1.1)], {"a": ("r1|x", 1)},
                     {"kv:v:" + P + "a": "1|L|1|1||r1|x"})
        self.assertTrue(any("unknown format" in p for p in res["problems"]), res["problems"])

    def test_entries_of_an_earlier_redis_run_are_not_compared(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 2, "r2", 1.4)], {"a": ("r2|x", 2)},
                     {"kv:v:fedcba987654:" + P + "a": "3:1|L|1|1||r1|x"})
        self.assertEqual(res["problems"], [])

    def test_final_value_not_the_last_applied_write(self):
        res = verify([put("r1", "a", 1.0, 1.1, op="o1"), put("r2", "a", 1.2, 1.3, op="o2")], [],
                     [("o1", "a", "PUT", 1, "r1", 1.1), ("o2", "a", "PUT", 2, "r2", 1.4)], {"a": ("r1|x", 2)}, {})
        self.assertTrue(any(p.startswith("kv.value") for p in res["problems"]), res["problems"])


class AnswersAreClassified(unittest.TestCase):
    def test_outcomes(self):
        self.assertEqual(classify_write(Answer(True, 200, {"status": "applied", "operationId": "o", "version": "3"})),
                         ("acked", "applied", "o", 3))
        self.assertEqual(classify_write(Answer(True, 200, {"status": "queued", "operationId": "o", "version": "0"})),
                         ("acked", "queued", "o", None))
        self.assertEqual(classify_write(Answer(True, 503, {"code": 14}))[0], "failed")
        self.assertEqual(classify_write(Answer(False, None, None, "ConnectionRefusedError"))[0], "failed")
        self.assertEqual(classify_write(Answer(True, None, None, "TimeoutError"))[0], "unknown")


if __name__ == "__main__":
    unittest.main(verbosity=1)
