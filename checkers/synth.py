"""Synthetic histories whose verdict is known, in one place: for tests, benchmarks and sample reports.

Theory of operation
-------------------
Three families, all drawing every random choice from a ``random.Random`` or a seed:

* :func:`simulate` / :func:`generate` play a concurrent system that is linearizable on
  purpose, for any sequential spec. Processes invoke random ops; at some random later moment
  each op takes effect atomically on one true state (its *linearization point*), computed by
  the spec's ``step``; later still the process learns the outcome, except that with
  probability ``p_info`` it learns nothing (``info``), and an op whose point was not reached
  may still take effect later, or never. :func:`render` turns :class:`OpRecord` lists into a
  :class:`History`; :func:`mutate` changes values, outcomes and intervals to get histories
  of unknown verdict for the brute-force oracle. :func:`kv_history`, :func:`stale_read` and
  :func:`cas_register_history` build the benchmark shapes of the linearizability search.
* :func:`list_append_history` and :func:`register_history` run a datatype *sequentially*:
  operations take effect one at a time at strictly increasing linearization points, each
  inside an interval drawn on a free process, so the history is strict serializable by
  construction. ``fail`` ops do not take effect; ``info`` ops take effect with probability
  1/2 and retire their process. :func:`inject` then plants one named anomaly
  (:data:`INJECTIONS`) for the graph checker's tests.
* :func:`sample_run_events` writes the events of a small register run with nemesis ops,
  nodes and errors (and optionally one stale read), for sample run directories and reports.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace
from typing import Any

from jepsenlike.checkers.specs import Spec, freeze, get_spec, key_arg, thaw
from jepsenlike.history import History, Op

__all__ = ["INJECTIONS", "MODELS", "OpRecord", "cas_register_history", "generate", "inject", "kv_history", "list_append_history", "mutate", "register_history", "render", "sample_run_events", "simulate", "stale_read"]

MODELS = ("register", "cas-register", "kv", "mutex", "set", "queue", "list-append", "multi-register")


@dataclass
class OpRecord:
    """One operation: what was invoked, what came back, and when.

    ``outcome`` is ``ok``, ``fail``, ``info`` or None (never completed);
    ``call`` and ``ret`` are positions on a time line (``ret`` is None when the
    op never completed). ``result`` is the ok completion's value.
    """

    process: int
    f: str
    key: Any
    arg: Any
    result: Any
    outcome: str | None
    call: float
    ret: float | None


class _Ops:
    """Draws random invocations for one model."""

    def __init__(
        self, model: str, rng: random.Random, keys: list[Any], values: int, mix: Any = None
    ) -> None:
        self.model, self.rng, self.keys, self.values = model, rng, keys, values
        self.counter = 0
        self.mix = mix  # kv with unique tokens: (p_read, p_write); None for the default draw

    def unique(self) -> int:
        self.counter += 1
        return self.counter

    def draw(self) -> tuple[str, Any, Any]:
        rng, m = self.rng, self.model
        key = rng.choice(self.keys)
        v = rng.randrange(self.values)
        if m == "register":
            return rng.choice([("read", key, None), ("write", key, v)])
        if m == "cas-register":
            return rng.choice(
                [("read", key, None), ("write", key, v), ("cas", key, [v, rng.randrange(self.values)])]
            )
        if m == "kv" and self.mix is not None:
            r = rng.random()
            if r < self.mix[0]:
                return "read", key, None
            if r < self.mix[0] + self.mix[1]:
                return "write", key, f"w{self.unique()}"
            return "append", key, f" {self.unique()}"
        if m == "kv":
            return rng.choice(
                [("read", key, None), ("write", key, "ab"[v % 2]), ("append", key, "xyz"[v % 3])]
            )
        if m == "mutex":
            return rng.choice([("acquire", key, None), ("release", key, None)])
        if m == "set":
            return rng.choice([("add", key, self.unique()), ("read", key, None)])
        if m == "queue":
            return rng.choice([("enqueue", key, self.unique()), ("dequeue", key, None)])
        if m == "list-append":
            r = rng.random()
            if r < 0.4:
                return "append", key, self.unique()
            if r < 0.7:
                return "read", key, None
            mops = []
            for _ in range(rng.randint(1, 3)):
                k = rng.choice(self.keys)
                mops.append(["append", k, self.unique()] if rng.random() < 0.5 else ["r", k, None])
            return "txn", None, mops
        if m == "multi-register":
            mops = []
            for _ in range(rng.randint(1, 3)):
                k = rng.choice(self.keys)
                mops.append(["w", k, rng.randrange(self.values)] if rng.random() < 0.5 else ["r", k, None])
            return "txn", None, mops
        raise ValueError(f"no generator for model {m!r}")


def _observe(spec: Spec, state: Any, f: str, key: Any, arg: Any) -> Any:
    """What an op invoked with ``arg`` would return from ``state`` (JSON)."""
    name = spec.name
    if name == "multi-register":
        out = []
        cur = dict(state)
        for mf, k, v in arg:
            if mf in ("r", "read"):
                out.append([mf, k, thaw(cur.get(freeze(k)))])
            else:
                cur[freeze(k)] = freeze(v)
                out.append([mf, k, v])
        return out
    if name == "list-append":
        if f == "txn":
            out = []
            cur = dict(state)
            for mf, k, v in arg:
                fk = freeze(k)
                if mf == "append":
                    cur[fk] = cur.get(fk, ()) + (v,)
                    out.append([mf, k, v])
                else:
                    out.append([mf, k, thaw(cur.get(fk, ()))])
            return out
        if f == "read":
            return thaw(state.get(freeze(key), ()))
        return arg
    if f == "read":
        return thaw(state)
    if f == "dequeue":
        return thaw(state[0]) if state else None
    return arg


def simulate(
    model: str,
    rng: random.Random,
    *,
    n_ops: int,
    processes: int = 3,
    keys: list[Any] | None = None,
    p_info: float = 0.1,
    p_fail: float = 0.05,
    p_never: float = 0.3,
    values: int = 4,
    init: Any = None,
    kv_mix: tuple[float, float] | None = None,
) -> list[OpRecord]:
    """Records of a linearizable run of ``n_ops`` ops by ``processes`` concurrent processes.

    Args:
        p_info: chance that a completion is ``info`` instead of the real outcome.
        p_fail: chance that an op completes with ``fail`` before taking effect.
        p_never: chance that an op still running at the end never completes.
        keys: the keys ops address (default: one key, ``None``).
        kv_mix: for ``kv``, ``(p_read, p_write)``: reads, writes of unique
            strings and appends of unique tokens in these proportions (the rest
            appends); None draws from a few short values.
    """
    spec = get_spec(model, init)
    keys = [None] if keys is None else keys
    draw = _Ops(model, rng, keys, values, kv_mix)
    states: dict[Any, Any] = {}

    def take_effect(rec: OpRecord) -> tuple[bool, Any]:
        sk = freeze(rec.key) if spec.keyed else None
        state = states[sk] if sk in states else spec.init()
        op = Op(0, 0, rec.process, "invoke", rec.f, rec.key, rec.arg)
        result = _observe(spec, state, rec.f, rec.key, rec.arg)
        ok, new = spec.step(state, rec.f, key_arg(spec, op, rec.arg), freeze(result))
        if ok:
            states[sk] = new
        return ok, result

    records: list[OpRecord] = []
    running: dict[int, tuple[OpRecord, bool | None, Any]] = {}  # process -> (rec, effect, result)
    ghosts: list[OpRecord] = []  # info ops that may still take effect
    idle = list(range(processes))
    next_process = processes
    clock = 0
    invoked = 0
    while invoked < n_ops or running:
        clock += 1
        choices = []
        if idle and invoked < n_ops:
            choices.append("invoke")
        if running:
            choices += ["point", "complete"]
        if ghosts:
            choices.append("ghost")
        action = rng.choice(choices)
        if action == "invoke":
            p = idle.pop(rng.randrange(len(idle)))
            f, key, arg = draw.draw()
            rec = OpRecord(p, f, key, arg, None, None, clock, None)
            records.append(rec)
            running[p] = (rec, None, None)
            invoked += 1
        elif action == "point":
            p = rng.choice(list(running))
            rec, effect, result = running[p]
            if effect is None:
                running[p] = (rec, *take_effect(rec))
        elif action == "complete":
            p = rng.choice(list(running))
            rec, effect, result = running[p]
            if effect is None and rng.random() >= p_fail + p_info:
                continue  # must take effect before it can answer
            del running[p]
            rec.ret = clock
            if rng.random() < p_info:
                rec.outcome = "info"
                if effect is None:
                    ghosts.append(rec)
                p = next_process  # an info process is retired
                next_process += 1
            elif effect is None or effect is False:
                rec.outcome = "fail"
            else:
                rec.outcome, rec.result = "ok", result
            idle.append(p)
        else:
            rec = ghosts.pop(rng.randrange(len(ghosts)))
            if rng.random() < 0.7:
                take_effect(rec)
        if invoked >= n_ops and running and rng.random() < p_never / max(1, len(running)):
            # leave one op hanging: it may take effect or not, and never completes
            p = rng.choice(list(running))
            rec, effect, _ = running.pop(p)
            if effect is None and rng.random() < 0.5:
                take_effect(rec)
    return records


def render(records: list[OpRecord], source: str = "<generated>") -> History:
    """The history of ``records``: events in time-line order, processes kept where valid."""
    events: list[tuple[float, int, int]] = []
    for i, r in enumerate(records):
        events.append((r.call, 0, i))
        if r.outcome is not None and r.ret is not None:
            events.append((r.ret, 1, i))
    events.sort()
    busy: set[int] = set()
    proc: dict[int, int] = {}
    fresh = max((r.process for r in records), default=0) + 1
    ops: list[Op] = []
    for idx, (_, kind, i) in enumerate(events):
        r = records[i]
        if kind == 0:
            p = r.process
            if p in busy:
                p, fresh = fresh, fresh + 1
            proc[i] = p
            busy.add(p)
            ops.append(Op(idx, idx * 1000, p, "invoke", r.f, r.key, r.arg))
        else:
            p = proc[i]
            busy.discard(p)
            value = r.result if r.outcome == "ok" else r.arg
            ops.append(Op(idx, idx * 1000, p, r.outcome or "info", r.f, r.key, value))
    return History.from_ops(ops, source)


def generate(model: str, seed: int, **kw: Any) -> History:
    """``render(simulate(model, random.Random(seed), **kw))``."""
    return render(simulate(model, random.Random(seed), **kw), f"<{model} seed={seed}>")


def stale_read(records: list[OpRecord], key: Any, at: float = 0.5) -> list[OpRecord] | None:
    """A copy of kv ``records`` where one ok read of ``key`` returns a stale value.

    The read R gets the value of an earlier ok read R0 although an ok append W
    ran entirely between them (R0 returned before W was invoked, W returned
    before R was invoked). With unique append tokens (``simulate(kv_mix=...)``)
    this is provably not linearizable: W's token is in the value from W's
    point on, a value without it could only come back by repeating a write or
    append, and each op happens once. R is the candidate read nearest to
    fraction ``at`` of the key's ops. None when the key has no such triple.
    """
    ops = [i for i, r in enumerate(records) if r.key == key]
    reads = [i for i in ops if records[i].f == "read" and records[i].outcome == "ok"]
    appends = [i for i in ops if records[i].f == "append" and records[i].outcome == "ok"]
    best: tuple[float, int, int] | None = None
    for pos, i in enumerate(ops):
        r = records[i]
        if r.f != "read" or r.outcome != "ok":
            continue
        ws = [w for w in appends if records[w].ret is not None and records[w].ret < r.call]
        if not ws:
            continue
        w = max(ws, key=lambda j: records[j].ret or 0.0)
        r0s = [
            j for j in reads
            if j != i and records[j].ret is not None and records[j].ret < records[w].call
            and records[j].result != r.result
        ]
        if not r0s:
            continue
        r0 = max(r0s, key=lambda j: records[j].ret or 0.0)
        score = abs(pos / max(1, len(ops) - 1) - at)
        if best is None or score < best[0]:
            best = (score, i, r0)
    if best is None:
        return None
    out = [replace(r) for r in records]
    out[best[1]].result = records[best[2]].result
    return out


def kv_history(
    seed: int,
    *,
    clients: int = 50,
    n_ops: int = 2_000,
    n_keys: int = 10,
    p_info: float = 0.05,
    bad_key: Any = 0,
    at: float = 0.5,
) -> History:
    """A Jepsen-like kv run: ``clients`` concurrent clients, reads, unique writes and
    appends over ``n_keys`` keys, timeouts (``info``) with probability ``p_info``;
    with ``bad_key`` not None, that key gets one stale read (:func:`stale_read`), so
    exactly that key is not linearizable. The shape of Porcupine's 50-client kv test."""
    rng = random.Random(seed)
    keys = list(range(n_keys))
    for _ in range(100):
        recs = simulate(
            "kv", rng, n_ops=n_ops, processes=clients, keys=keys, p_info=p_info,
            p_fail=0.0, p_never=0.1, kv_mix=(0.5, 0.1),
        )
        if bad_key is None:
            return render(recs, f"<kv seed={seed}>")
        bad = stale_read(recs, bad_key, at)
        if bad is not None:
            return render(bad, f"<kv seed={seed} stale read on key {bad_key}>")
    raise ValueError(f"no stale read could be placed on key {bad_key!r}; use more ops")


def cas_register_history(
    seed: int, *, n_ops: int = 80, clients: int = 5, p_info: float = 0.2, values: int = 5
) -> History:
    """A short single-key cas-register run like Jepsen's etcd tests: ``clients``
    clients, each timeout (``info``) retiring its process, so ops of unknown
    outcome pile up as concurrent with everything after them."""
    return generate(
        "cas-register", seed, n_ops=n_ops, processes=clients, p_info=p_info, p_fail=0.1,
        values=values,
    )


def mutate(records: list[OpRecord], rng: random.Random, values: int = 4) -> list[OpRecord]:
    """A copy of ``records`` with one random change that may break linearizability."""
    for _ in range(20):
        recs = _mutate_once(records, rng, values)
        if recs != records:
            return recs
    return recs


def _mutate_once(records: list[OpRecord], rng: random.Random, values: int) -> list[OpRecord]:
    recs = [replace(r) for r in records]
    if not recs:
        return recs
    i = rng.randrange(len(recs))
    r = recs[i]
    how = rng.choice(["result", "result", "outcome", "arg", "stretch", "shrink", "drop", "swap"])
    if how in ("result", "arg") and r.f in ("acquire", "release"):
        r.f = "release" if r.f == "acquire" else "acquire"
    elif how == "result" and r.outcome == "ok" and r.f in ("read", "dequeue", "txn"):
        # only what was observed: an ok write repeats its invocation's value
        # (a history where it does not is malformed, see Spec.check_completion)
        if r.f == "txn":
            r.result = _perturb_txn(r.result, rng, values, reads_only=True)
        else:
            r.result = _perturb(r.result, rng, values)
    elif how == "outcome":
        new = rng.choice(["ok", "fail", "info", None])
        if new == "ok" and r.outcome != "ok":
            r.result = r.arg if r.f not in ("read", "dequeue") else _perturb(None, rng, values)
        r.outcome = new
        if new is not None and r.ret is None:
            r.ret = max(x.call for x in recs) + rng.random()
    elif how in ("arg", "result") and r.arg is not None:
        r.arg = _perturb_txn(r.arg, rng, values) if r.f == "txn" else _perturb(r.arg, rng, values)
        if r.outcome == "ok" and r.f == "txn" and r.result is not None:
            r.result = [
                list(a) if a[0] not in ("r", "read") else list(m)
                for a, m in zip(r.arg, r.result, strict=True)
            ]
        elif r.outcome == "ok" and r.f not in ("read", "dequeue"):
            r.result = r.arg
    elif how == "stretch":
        r.call = r.call - rng.random() * 3
        if r.ret is not None:
            r.ret += rng.random() * 3
    elif how == "shrink" and r.ret is not None:
        mid = r.call + (r.ret - r.call) * rng.random()
        r.call, r.ret = mid, mid + 0.01 + rng.random() * 0.1
    elif how == "drop":
        del recs[i]
    elif how == "swap":
        j = rng.randrange(len(recs))
        recs[i].call, recs[j].call = recs[j].call, recs[i].call
        for x in (recs[i], recs[j]):
            if x.ret is not None and x.ret <= x.call:
                x.ret = x.call + 0.5
    return recs


def _perturb_txn(mops: Any, rng: random.Random, values: int, reads_only: bool = False) -> Any:
    if not mops:
        return mops
    out = [list(m) for m in mops]
    pick = [m for m in out if not reads_only or m[0] in ("r", "read")]
    if not pick:
        return out
    m = pick[rng.randrange(len(pick))]
    m[2] = _perturb(m[2], rng, values)
    return out


def _perturb(v: Any, rng: random.Random, values: int) -> Any:
    if isinstance(v, list):
        if not v:
            return [rng.randrange(values)]
        out = list(v)
        j = rng.randrange(len(out))
        out[j] = _perturb(out[j], rng, values)
        if rng.random() < 0.3:
            rng.shuffle(out)
        return out
    if isinstance(v, str):
        return v + "x" if rng.random() < 0.5 else v[:-1]
    if isinstance(v, bool) or v is None:
        return rng.choice([None, 0, 1, rng.randrange(values)])
    if isinstance(v, int):
        return rng.choice([v + 1, v - 1, None, rng.randrange(values)])
    return v



EXAMPLE_SEED = 20261126


def example_history() -> History:
    """The linearizable cas-register history shipped as ``jepsenlike/examples/cas-register.jsonl``."""
    return generate(
        "cas-register", EXAMPLE_SEED, n_ops=200, processes=5, p_info=0.05, p_fail=0.05, values=5
    )


def bad_example_history() -> History:
    """The small non-linearizable history shipped as ``examples/cas-register-bad.jsonl``.

    Two cas ops from 0 both succeed while a third process writes and reads in
    between: the second cas cannot have found 0.
    """
    events = [
        (0, "invoke", "write", 0), (0, "ok", "write", 0),
        (1, "invoke", "cas", [0, 1]), (2, "invoke", "read", None), (1, "ok", "cas", [0, 1]),
        (2, "ok", "read", 1), (0, "invoke", "cas", [0, 2]), (3, "invoke", "write", 4),
        (3, "info", "write", 4), (0, "ok", "cas", [0, 2]), (2, "invoke", "read", None),
        (2, "ok", "read", 2),
    ]
    ops = [Op(i, i * 1_000_000, p, t, f, None, v) for i, (p, t, f, v) in enumerate(events)]
    return History.from_ops(ops, "cas-register-bad")


# ---------------------------------------------------------------- sequential, for the graph checker



class _Clock:
    """Processes, linearization points and intervals."""

    def __init__(self, rng: random.Random, n_processes: int, spread: int) -> None:
        self.rng = rng
        self.spread = spread
        self.t = 0
        self.next_pid = n_processes
        self.free: list[tuple[int, int]] = [(0, p) for p in range(n_processes)]
        heapq.heapify(self.free)
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        self.seq = 0

    def slot(self) -> tuple[int, int, int, int]:
        """(process, invoke time, linearization point, completion time)."""
        free_at, pid = heapq.heappop(self.free)
        rng = self.rng
        self.t = max(self.t + rng.randint(1, 3), free_at + 1)
        lp = self.t
        invoke = rng.randint(max(free_at, lp - self.spread), lp)
        complete = lp + rng.randint(1, self.spread)
        return pid, invoke, lp, complete

    def record(self, pid: int, invoke: int, complete: int, f: str, key: Any,
               inv_value: Any, outcome: str, comp_value: Any, completes: bool = True) -> None:
        base = {"process": pid, "f": f}
        if key is not None:
            base["key"] = key
        self.events.append((invoke, self.seq, {**base, "type": "invoke", "value": inv_value}))
        self.seq += 1
        if completes:
            self.events.append((complete, self.seq, {**base, "type": outcome, "value": comp_value}))
            self.seq += 1
        if outcome == "info":
            pid = self.next_pid  # the process is retired
            self.next_pid += 1
        heapq.heappush(self.free, (complete + 1, pid))

    def history(self) -> History:
        self.events.sort(key=lambda e: (e[0], e[1]))
        ops = [
            Op(index=i, time=t * 1000, process=d["process"], type=d["type"], f=d["f"],
               key=d.get("key"), value=d["value"])
            for i, (t, _, d) in enumerate(self.events)
        ]
        return History.from_ops(ops, source="<synthetic>")


def _outcome(rng: random.Random, p_fail: float, p_info: float) -> tuple[str, bool]:
    """(outcome, takes effect)."""
    r = rng.random()
    if r < p_fail:
        return "fail", False
    if r < p_fail + p_info:
        return "info", rng.random() < 0.5
    return "ok", True


def list_append_history(
    rng: random.Random,
    *,
    n_txns: int = 50,
    target_micro_ops: int | None = None,
    n_processes: int = 5,
    keys_active: int = 3,
    max_appends_per_key: int = 32,
    max_mops: int = 4,
    read_fraction: float = 0.5,
    p_fail: float = 0.05,
    p_info: float = 0.05,
    single_ops: bool = False,
    spread: int = 10,
    final_reads: bool = False,
) -> History:
    """A strict-serializable list-append history.

    Args:
        n_txns: transactions to generate (ignored if ``target_micro_ops``).
        target_micro_ops: stop once this many micro-ops were generated.
        keys_active: keys in use at a time; a key is retired after
            ``max_appends_per_key`` appends and a fresh key takes its place.
        single_ops: emit single ``append``/``read`` ops instead of ``txn``s.
        final_reads: end with one ok read of every key ever used (as Jepsen's
            final generator does), each its own transaction.
    """
    clock = _Clock(rng, n_processes, spread)
    state: dict[int, list[int]] = {}
    appends: dict[int, int] = {}
    active = list(range(keys_active))
    next_key = keys_active
    for k in active:
        state[k] = []
        appends[k] = 0
    micro = 0
    i = 0
    while (micro < target_micro_ops) if target_micro_ops is not None else (i < n_txns):
        i += 1
        pid, invoke, _, complete = clock.slot()
        outcome, effective = _outcome(rng, p_fail, p_info)
        n = 1 if single_ops else rng.randint(1, max_mops)
        micro += n
        local: dict[int, list[int]] = {}
        mops: list[list[Any]] = []
        for _ in range(n):
            slot = rng.randrange(len(active))
            k = active[slot]
            if rng.random() < read_fraction:
                cur = local.get(k, state[k])
                mops.append(["r", k, list(cur)])
            else:
                appends[k] += 1
                v = appends[k]
                cur = local.get(k)
                if cur is None:
                    cur = local[k] = list(state[k])
                cur.append(v)
                mops.append(["append", k, v])
                if appends[k] >= max_appends_per_key:
                    state.setdefault(next_key, [])
                    appends[next_key] = 0
                    active[slot] = next_key
                    next_key += 1
        if effective:
            state.update(local)
        inv_mops = [[f, k, None] if f == "r" else [f, k, v] for f, k, v in mops]
        comp_mops = mops if outcome == "ok" else inv_mops
        completes = outcome != "info" or rng.random() < 0.7
        if single_ops:
            f, k, v = mops[0]
            fname = "read" if f == "r" else "append"
            inv_v = None if f == "r" else v
            comp_v = v if (f == "append" or outcome == "ok") else None
            clock.record(pid, invoke, complete, fname, k, inv_v, outcome, comp_v, completes)
        else:
            clock.record(pid, invoke, complete, "txn", None, inv_mops, outcome, comp_mops,
                         completes)
    if final_reads:
        for k in sorted(state):
            pid, invoke, _, complete = clock.slot()
            if single_ops:
                clock.record(pid, invoke, complete, "read", k, None, "ok", list(state[k]))
            else:
                clock.record(pid, invoke, complete, "txn", None, [["r", k, None]], "ok",
                             [["r", k, list(state[k])]])
    return clock.history()


def register_history(
    rng: random.Random,
    *,
    n_ops: int = 30,
    n_processes: int = 4,
    n_keys: int = 2,
    read_fraction: float = 0.4,
    cas_fraction: float = 0.3,
    p_fail: float = 0.05,
    p_info: float = 0.1,
    spread: int = 10,
) -> History:
    """A linearizable read/write/cas register history with unique written values.

    A cas whose ``old`` does not match the current value completes ``fail``.
    """
    clock = _Clock(rng, n_processes, spread)
    value: dict[int, Any] = dict.fromkeys(range(n_keys))
    written: dict[int, list[int]] = {k: [] for k in range(n_keys)}
    counter = 0
    for _ in range(n_ops):
        pid, invoke, _, complete = clock.slot()
        k = rng.randrange(n_keys)
        r = rng.random()
        outcome, effective = _outcome(rng, p_fail, p_info)
        completes = outcome != "info" or rng.random() < 0.7
        if r < read_fraction:
            comp = value[k] if outcome == "ok" else None
            clock.record(pid, invoke, complete, "read", k, None, outcome, comp, completes)
            continue
        counter += 1
        new = counter
        if r < read_fraction + cas_fraction:
            if rng.random() < 0.7 or not written[k]:
                old = value[k]
            else:
                old = rng.choice(written[k])
            if old != value[k] and outcome != "info":
                outcome, effective = "fail", False
            elif old != value[k]:
                effective = False
            if effective:
                value[k] = new
                written[k].append(new)
            clock.record(pid, invoke, complete, "cas", k, [old, new], outcome, [old, new],
                         completes)
        else:
            if effective:
                value[k] = new
                written[k].append(new)
            clock.record(pid, invoke, complete, "write", k, new, outcome, new, completes)
    return clock.history()


# --------------------------------------------------------------------------- injections
#
# Each injection edits a valid list-append txn history so that it contains one
# known anomaly, entangled with existing transactions: the anomaly's ops are
# transactions already in the history (given extra micro-ops on fresh keys),
# plus, where the anomaly needs a witness read, reads appended at the end.

INJECTIONS: dict[str, str] = {
    "G0": "G0",
    "G1a": "G1a",
    "G1b": "G1b",
    "G1c": "G1c",
    "G-single": "G-single",
    "G2": "G2",
    "stale-read": "G-single-realtime",
    "lost-append": "lost-append",
    "duplicate-elements": "duplicate-elements",
    "garbage-read": "garbage-read",
    "incompatible-order": "incompatible-order",
}
"""Injection name -> the anomaly type the checker must report."""


class _Editor:
    def __init__(self, history: History) -> None:
        self.ops = [op.to_dict() for op in history.ops]
        self.history = history
        self.pairs = [
            (inv.index, comp.index)
            for inv, comp in history.pairs()
            if comp is not None and comp.type == "ok" and inv.f == "txn"
        ]
        procs = [op.process for op in history.ops if isinstance(op.process, int)]
        self.next_pid = (max(procs) + 1) if procs else 0
        self.tail: list[dict[str, Any]] = []
        self.fresh = 0

    def key(self) -> str:
        self.fresh += 1
        return f"injected-{self.fresh}"

    def prepend(self, pair: tuple[int, int], mops: list[list[Any]]) -> None:
        inv, comp = pair
        self.ops[inv]["value"] = [[f, k, None if f == "r" else v] for f, k, v in mops] + list(
            self.ops[inv]["value"]
        )
        self.ops[comp]["value"] = [list(m) for m in mops] + list(self.ops[comp]["value"])

    def final_txn(self, mops: list[list[Any]]) -> None:
        """A txn run alone after everything else, on a fresh process."""
        pid = self.next_pid
        self.next_pid += 1
        inv = [[f, k, None if f == "r" else v] for f, k, v in mops]
        self.tail.append({"process": pid, "type": "invoke", "f": "txn", "value": inv})
        self.tail.append({"process": pid, "type": "ok", "f": "txn", "value": mops})

    def build(self) -> History:
        t = self.ops[-1]["time"] if self.ops else 0
        out = list(self.ops)
        for d in self.tail:
            t += 1000
            out.append({**d, "index": len(out), "time": t})
        return History.from_ops(out, source="<synthetic+injected>")


def inject(history: History, kind: str, rng: random.Random) -> History | None:
    """Return a copy of a txn list-append history with anomaly ``kind`` injected.

    None when the history has too few suitable transactions.
    """
    ed = _Editor(history)
    if kind == "G1a":
        return _inject_g1a(history, ed, rng)
    if len(ed.pairs) < 2:
        return None
    a, b = rng.sample(ed.pairs, 2)
    x, y = ed.key(), ed.key()
    if kind == "G0":
        ed.prepend(a, [["append", x, 1], ["append", y, 2]])
        ed.prepend(b, [["append", x, 3], ["append", y, 4]])
        ed.final_txn([["r", x, [1, 3]], ["r", y, [4, 2]]])
    elif kind == "G1b":
        ed.prepend(a, [["append", x, 1], ["append", x, 2]])
        ed.prepend(b, [["r", x, [1]]])
        ed.final_txn([["r", x, [1, 2]]])
    elif kind == "G1c":
        ed.prepend(a, [["append", x, 1], ["r", y, [2]]])
        ed.prepend(b, [["append", y, 2], ["r", x, [1]]])
    elif kind == "G-single":
        ed.prepend(a, [["r", x, []], ["r", y, [3]]])
        ed.prepend(b, [["append", x, 2], ["append", y, 3]])
        ed.final_txn([["r", x, [2]]])
    elif kind == "G2":
        ed.prepend(a, [["append", x, 1], ["r", y, []]])
        ed.prepend(b, [["append", y, 2], ["r", x, []]])
        ed.final_txn([["r", x, [1]], ["r", y, [2]]])
    elif kind == "stale-read":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1]]])
        ed.final_txn([["r", x, []]])
    elif kind == "lost-append":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, []]])
    elif kind == "duplicate-elements":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1, 1]]])
    elif kind == "garbage-read":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1, 99]]])
    elif kind == "incompatible-order":
        ed.prepend(a, [["append", x, 1]])
        ed.prepend(b, [["append", x, 2]])
        ed.final_txn([["r", x, [1, 2]]])
        ed.final_txn([["r", x, [2, 1]]])
    else:
        raise ValueError(f"unknown injection {kind!r}; known: {', '.join(INJECTIONS)}")
    return ed.build()


def _inject_g1a(history: History, ed: _Editor, rng: random.Random) -> History | None:
    """Turn an ok txn whose append some read observed into a ``fail``."""
    readers: dict[tuple[Any, Any], set[int]] = {}
    for inv, comp in history.pairs():
        if comp is not None and comp.type == "ok" and inv.f == "txn":
            for f, k, v in comp.value:
                if f == "r" and v:
                    for e in v:
                        readers.setdefault((k, e), set()).add(comp.index)
    candidates = [
        (i, c) for i, c in ed.pairs
        if any(
            f == "append" and readers.get((k, v), set()) - {c}
            for f, k, v in ed.ops[c]["value"]
        )
    ]
    if not candidates:
        return None
    inv, comp = rng.choice(candidates)
    ed.ops[comp]["type"] = "fail"
    ed.ops[comp]["value"] = ed.ops[inv]["value"]
    return ed.build()


# ---------------------------------------------------------------- sample runs, for reports

MS = 1_000_000


def sample_run_events(rng: random.Random, rounds: int, n_procs: int, stale_at: int | None) -> list[dict[str, Any]]:
    """A register run's events for sample reports: two keys, three nodes, a kill, a restart
    and a pause of the nemesis, ``fail`` while n2 is down; with ``stale_at``, round
    ``stale_at`` reads key 0's first value back after two later writes (a stale read)."""
    events: list[dict[str, Any]] = []
    t = 5 * MS
    value: dict[int, Any] = {0: None, 1: None}
    first_written: dict[int, Any] = {}
    counter = 0
    procs = list(range(n_procs))
    next_pid = n_procs
    nodes = ["n1", "n2", "n3"]

    def nemesis(f: str, asked: Any, done: Any) -> None:
        nonlocal t
        events.append({"time": t, "process": "nemesis", "type": "invoke", "f": f, "value": asked})
        t += MS // 10
        events.append({"time": t, "process": "nemesis", "type": "info", "f": f, "value": done})
        t += MS // 10

    for r in range(rounds):
        if r == rounds // 5:
            nemesis("kill", "one", {"nodes": ["n2"], "targets": "one"})
        if r == rounds // 2:
            nemesis("start", None, {"nodes": ["n2"]})
        if r == (3 * rounds) // 4:
            nemesis("pause", "one", {"nodes": ["n3"], "targets": "one"})
        if stale_at is not None and r == stale_at:
            # Make sure key 0 has been written twice, then read the first value back.
            for _ in range(2):
                counter += 1
                p = procs[0]
                events.append({"time": t, "process": p, "type": "invoke", "f": "write", "key": 0,
                               "value": counter, "node": "n1"})
                t += 2 * MS
                events.append({"time": t, "process": p, "type": "ok", "f": "write", "key": 0,
                               "value": counter, "node": "n1"})
                first_written.setdefault(0, counter)
                value[0] = counter
                t += MS
            p = procs[1]
            events.append({"time": t, "process": p, "type": "invoke", "f": "read", "key": 0, "value": None,
                           "node": "n3"})
            t += 3 * MS
            events.append({"time": t, "process": p, "type": "ok", "f": "read", "key": 0,
                           "value": first_written[0], "node": "n3"})
            t += MS
        invoked = []
        for p in procs:
            k = rng.randrange(2)
            node = rng.choice(nodes)
            x = rng.random()
            if x < 0.45:
                f, v = "read", None
            elif x < 0.8:
                counter += 1
                f, v = "write", counter
            else:
                counter += 1
                f, v = "cas", [value[k], counter]
            events.append({"time": t, "process": p, "type": "invoke", "f": f, "key": k, "value": v, "node": node})
            invoked.append((p, f, k, v, node))
            t += rng.randint(1, 400) * 1000
        rng.shuffle(invoked)
        retired = []
        for p, f, k, v, node in invoked:
            t += rng.randint(1, 3000) * 1000
            y = rng.random()
            down = node == "n2" and rounds // 5 <= r < rounds // 2
            outcome = "fail" if down or y < 0.05 else "info" if y < 0.08 else "ok"
            takes_effect = outcome == "ok" or (outcome == "info" and rng.random() < 0.5)
            comp: dict[str, Any] = {"time": t, "process": p, "type": outcome, "f": f, "key": k, "node": node}
            if f == "read":
                comp["value"] = value[k] if outcome == "ok" else None
            elif f == "write":
                comp["value"] = v
                if takes_effect:
                    value[k] = v
                    if outcome == "ok":
                        first_written.setdefault(k, v)
            else:
                old, new = v
                if value[k] != old and outcome == "ok":
                    outcome = comp["type"] = "fail"
                    takes_effect = False
                comp["value"] = v
                if takes_effect and value[k] == old:
                    value[k] = new
                    if outcome == "ok":
                        first_written.setdefault(k, new)
            if outcome == "fail":
                comp["error"] = "connect: connection refused" if down else "cas mismatch" if f == "cas" else "rejected"
            if outcome == "info":
                comp["error"] = "timeout"
                retired.append(p)
            events.append(comp)
        for p in retired:
            procs[procs.index(p)] = next_pid
            next_pid += 1
        t += rng.randint(1, 5) * MS
    return events
