"""Run statistics computed from a history alone."""

from __future__ import annotations

from jepsenlike.history import History
from jepsenlike.stats import compute_stats, phase_of, quantiles


def test_quantiles_nearest_rank():
    assert quantiles([]) == {}
    assert quantiles([5.0]) == {"p50": 5.0, "p90": 5.0, "p99": 5.0, "max": 5.0}
    q = quantiles([float(i) for i in range(1, 101)])
    assert (q["p50"], q["p90"], q["p99"], q["max"]) == (50.0, 90.0, 99.0, 100.0)


def test_phase_of():
    phases = {"warmup": 0, "chaos": 10, "recover": 20, "final": 30}
    assert [phase_of(t, phases) for t in (0, 9, 10, 25, 31)] == ["warmup", "warmup", "chaos", "recover", "final"]
    assert phase_of(5, None) == "all"


def test_counts_latency_availability_and_faults():
    ms = 1_000_000
    ev = [
        (0, 0, "invoke", "read", None), (2 * ms, 0, "ok", "read", 1),
        (3 * ms, 1, "invoke", "write", 2), (4 * ms, "nemesis", "invoke", "kill", "one"),
        (5 * ms, "nemesis", "info", "kill", {"nodes": ["n2"]}), (13 * ms, 1, "info", "write", 2),
        (14 * ms, 5, "invoke", "write", 3), (15 * ms, 5, "fail", "write", 3),
        (16 * ms, 0, "invoke", "read", None),
    ]
    h = History.from_ops([{"index": i, "time": t, "process": p, "type": ty, "f": f, "value": v}
                          for i, (t, p, ty, f, v) in enumerate(ev)])
    s = compute_stats(h, {"warmup": 0, "chaos": 3 * ms})
    assert s["counts"] == {"read": {"ok": 1, "pending": 1}, "write": {"info": 1, "fail": 1}}
    assert s["latency_ms"]["read"]["p50"] == 2.0 and "write" not in s["latency_ms"]
    assert s["availability"]["warmup"] == {"ops": 1, "ok": 1, "fail": 0, "info": 0, "ok_fraction": 1.0}
    assert s["availability"]["chaos"]["ok_fraction"] == 0 and s["availability"]["chaos"]["info"] == 2
    assert s["faults"] == [{"time_s": 0.005, "f": "kill", "value": {"nodes": ["n2"]}}]
