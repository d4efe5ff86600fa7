"""The generator: seeded op plans, per-worker streams, process incarnations, pacing."""

from __future__ import annotations

import random
import threading

from jepsenlike.client import Router
from jepsenlike.config import TestConfig
from jepsenlike.generator import Phases, Stagger, Tally, Worker, derive_rng, plan_ops
from jepsenlike.history_io import HistoryWriter, read_history
from jepsenlike.workloads import get_workload
from jepsenlike.workloads.base import Invocation


def cfg(**kw):
    return TestConfig(system="memory", seed=kw.pop("seed", 1), concurrency=kw.pop("concurrency", 4), **kw)


def test_same_seed_same_plan_for_every_workload():
    for name in ("register", "append", "set"):
        w = get_workload(name)
        a = plan_ops(w, cfg(seed=5), 200)
        assert a == plan_ops(get_workload(name), cfg(seed=5), 200)
        assert a != plan_ops(w, cfg(seed=6), 200)
        assert a[0] != a[1]  # workers draw from their own streams


def test_a_workers_plan_does_not_depend_on_the_other_workers():
    w = get_workload("register")
    assert plan_ops(w, cfg(concurrency=2), 50)[1] == plan_ops(w, cfg(concurrency=2), 50)[1]
    # Routing and pacing streams are separate from the op stream.
    assert derive_rng(1, "ops", 0).random() != derive_rng(1, "routing", 0).random()


def test_register_plan_mix_unique_values_and_key_rotation():
    c = cfg(keys=3, ops_per_key=20, concurrency=4)
    plans = plan_ops(get_workload("register"), c, 300)
    written = [i.value if i.f == "write" else i.value[1] for p in plans for i in p if i.f in ("write", "cas")]
    assert len(written) == len(set(written))  # every written value is unique in the run
    fs = [i.f for p in plans for i in p]
    assert 0.4 < fs.count("read") / len(fs) < 0.6 and fs.count("cas") > 0
    # ops_per_group = 20 * 3 // 4 = 15: ops 0..14 use keys 0-2, ops 15..29 keys 3-5.
    for p in plans:
        assert {i.key for i in p[:15]} <= {0, 1, 2}
        assert {i.key for i in p[15:30]} <= {3, 4, 5}


def test_append_plan_appends_unique_values_per_run():
    plans = plan_ops(get_workload("append"), cfg(), 200)
    vals = [m[2] for p in plans for i in p for m in i.value if m[0] == "append"]
    assert len(vals) == len(set(vals)) and vals
    assert all(i.f == "txn" and 1 <= len(i.value) <= 4 for p in plans for i in p)


def test_cas_takes_the_last_value_the_worker_saw():
    w = get_workload("register")
    seen: dict = {}
    inv = Invocation("cas", 1, ["?", 9])
    assert w.resolve(inv, seen).value == [None, 9]
    w.observe(Invocation("read", 1), {"type": "ok", "value": 4}, seen)
    assert w.resolve(inv, seen).value == [4, 9]
    w.observe(Invocation("write", 1, 7), {"type": "info"}, seen)  # not known to have happened
    assert w.resolve(inv, seen).value == [4, 9]


class ScriptedClient:
    """Answers from a script of types, to drive a worker deterministically."""

    def __init__(self, types):
        self.types = list(types)

    def invoke(self, f, key=None, value=None):
        t = self.types.pop(0) if self.types else "ok"
        return {"type": t, "value": None, "error": None if t == "ok" else "scripted"}

    def status(self):
        return {}

    def close(self):
        pass


def test_info_retires_the_process_and_the_worker_continues_as_w_plus_k_concurrency(tmp_path):
    c = cfg(concurrency=4)
    hist = HistoryWriter(tmp_path / "h.jsonl")
    client = ScriptedClient(["ok", "info", "fail", "info", "ok"])
    router = Router(["n1"], lambda n: client, "random", random.Random(0), 2)
    worker = Worker(2, get_workload("register"), c, hist, router, Tally(), set(), threading.Lock())
    for inv in [Invocation("read", 1)] * 5:
        worker.invoke(inv)
    hist.close()
    h = read_history(tmp_path / "h.jsonl")
    procs = [(op.process, op.type) for op in h if op.type != "invoke"]
    assert procs == [(2, "ok"), (2, "info"), (6, "fail"), (6, "info"), (10, "ok")]


def test_a_client_that_raises_or_answers_nonsense_is_recorded_as_info(tmp_path):
    class Bad(ScriptedClient):
        def invoke(self, f, key=None, value=None):
            if self.types.pop(0) == "raise":
                raise RuntimeError("bug")
            return {"type": "maybe"}

    hist = HistoryWriter(tmp_path / "h.jsonl")
    client = Bad(["raise", "nonsense"])
    router = Router(["n1"], lambda n: client, "random", random.Random(0))
    worker = Worker(0, get_workload("register"), cfg(), hist, router, Tally(), set(), threading.Lock())
    assert worker.invoke(Invocation("read", 1))["type"] == "info"
    assert worker.invoke(Invocation("read", 1))["type"] == "info"
    hist.close()
    errors = [op.error for op in read_history(tmp_path / "h.jsonl") if op.type == "info"]
    assert "client raised RuntimeError: bug" in errors[0] and "bad type 'maybe'" in errors[1]


def test_routing_round_robin_and_leader_hints():
    rr = Router(["n1", "n2", "n3"], lambda n: None, "round-robin", random.Random(0), worker=1)
    assert [rr.pick() for _ in range(4)] == ["n2", "n3", "n1", "n2"]
    lead = Router(["n1", "n2", "n3"], lambda n: None, "leader", random.Random(0), leader_of=lambda: "n3")
    assert lead.pick() == "n3"
    lead.observe("n3", {"type": "fail", "error": "not-leader", "leader": "n1"})
    assert lead.pick() == "n1"
    lead.observe("n1", {"type": "info", "error": "timeout"})
    assert lead.pick() == "n3"  # back to asking the cache


def test_stagger_paces_to_the_rate_and_stops_promptly():
    stop = threading.Event()
    s = Stagger(rate=1000.0, concurrency=1, rng=random.Random(0))
    import time

    t0 = time.monotonic()
    n = sum(1 for _ in range(50) if s.wait(stop))
    assert n == 50 and time.monotonic() - t0 >= 0.02  # mean 1 ms per op: not instantaneous
    slow = Stagger(rate=0.01, concurrency=1, rng=random.Random(0))
    stop.set()
    assert slow.wait(stop) is False
    assert Stagger(rate=0, concurrency=4, rng=random.Random(0)).mean == 0


def test_phases_keep_warmup_short_in_short_runs():
    assert Phases.for_config(cfg(time_limit=30.0, warmup=3.0)) == Phases(3.0, 30.0)
    assert Phases.for_config(cfg(time_limit=4.0, warmup=3.0)) == Phases(1.0, 4.0)
