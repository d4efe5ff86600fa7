"""Histories that are linearizable by construction, and mutations of them.

Theory of operation
-------------------
:func:`simulate` plays a concurrent system that is linearizable on purpose.
Processes invoke random ops; at some random later moment each op takes effect
atomically on one true state (its *linearization point*), computed by running
the spec's ``step``; later still the process learns the outcome. The outcome is
what really happened, except that with probability ``p_info`` the process
learns nothing (``info``) -- and an op whose point was not reached by then may
still take effect later, or never, exactly as a timed-out request in a real
system. An op the spec rejects at its point (a cas whose old value does not
match, an acquire of a held lock) completes with ``fail``. Some ops are left
without any completion at the end. Every random choice comes from ``rng``.

The simulation works on :class:`OpRecord` lists (one record per operation,
with the positions of its invocation and completion on a time line) and
:func:`render` turns records into a :class:`History`. Tests mutate records
(:func:`mutate`: change a value read, flip an outcome, stretch or shrink an
interval, drop an op) to get histories of unknown verdict for the oracle.
Mutations keep histories well formed: an ok write still repeats its
invocation's value (only what was observed is changed).

Benchmark shapes (also used by tests): :func:`kv_history` -- many concurrent
clients doing reads, writes of unique strings and appends of unique tokens
over several keys, timeouts, and optionally one *stale read* on one key
(:func:`stale_read`: provably not linearizable, see its docstring);
:func:`cas_register_history` -- short single-key cas-register runs with many
ops of unknown outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from jepsenlike.checkers.specs import Spec, freeze, get_spec, key_arg, thaw
from jepsenlike.history import History, Op

__all__ = [
    "MODELS",
    "OpRecord",
    "cas_register_history",
    "generate",
    "kv_history",
    "mutate",
    "render",
    "simulate",
    "stale_read",
]

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
