"""The shardkv node: one member of one Raft group, and a transaction coordinator.

Theory of operation
-------------------
A cluster of ``N`` nodes runs ``G`` groups (``--groups``): the nodes sorted by id
are cut into ``G`` runs of ``N/G``, each run one Raft group
(:class:`~jepsenlike.models.raft.server.RaftServer` underneath, with the group's
members as its only Raft peers). Every group's log drives a
:class:`~jepsenlike.models.shardkv.state.ShardState`: the shards it holds, the locks,
prepared transactions and the decisions it records. The peer transport reaches every
node of the cluster, so cross-group messages cross the same proxied links that the
partition nemesis cuts.

Any node accepts a client ``txn`` and coordinates it:

1. it maps each micro-op's key to a shard and the shard to a group by its *shard
   map* (learnt from ``wrong-group`` answers and from its own group's state);
2. a transaction on one group is one ``txn1`` command in that group's log;
3. otherwise it sends ``prepare`` to the participant groups one after another, in
   group order, stopping at the first refusal (a prepare takes the locks and answers the
   values read; sequential prepares cost a round per group but keep the lock footprint
   of a doomed transaction small, and they are what lets the seeded locking bugs show:
   with all prepares at one instant, the windows those bugs open are too short to be
   hit). If every one prepares, it records ``decide commit`` in the *coordinator group* (the lowest
   participant), then sends ``commit`` to every participant and answers ``ok`` with
   the values read. If a prepare is refused or times out, commit can never be
   recorded (only the coordinator records commit, and it will not), so it sends
   ``abort`` to every participant and answers a definite ``fail``. Only when the
   ``decide`` itself times out is the answer ``info``.

Recovery: every ``--recover-ms`` the leader of each group looks at its prepared
transactions; one prepared for longer than ``--recover-after`` seconds is resolved by
proposing ``decide abort`` in its coordinator group: the answer is the one decision
ever recorded (commit if the coordinator got there first), and the leader proposes
that outcome in its own log. The same task hands moved shards to their new group
(``shard-in``, retried until acknowledged, then ``shard-handed``).

Group calls: a command for group ``g`` is sent (message ``gop``) to the node of ``g``
that last answered, else the first; that node runs it in its group's log, forwarding
to its leader. Commands for the node's own group go straight to its log.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any

from jepsenlike.models.consensus import LEADER, NotLeader
from jepsenlike.models.raft.core import RaftNode
from jepsenlike.models.raft.server import RaftServer
from jepsenlike.models.raft.server import add_arguments as add_raft_arguments
from jepsenlike.models.server.node import Result, fail, info, run_node
from jepsenlike.models.shardkv.bugs import BUGS, parse_bugs
from jepsenlike.models.shardkv.state import MICRO_OPS, ShardState, initial_owner, shard_of

__all__ = ["ShardServer", "build_parser", "group_layout", "main"]

GROUP_OPS = ("txn1", "prepare", "commit", "abort", "decide", "shard-out", "shard-in", "shard-handed")
CLIENT_OPS = ("txn", "read", "write", "append")


def _natural(node_id: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)(\d+)", node_id)
    return (m.group(1), int(m.group(2))) if m else (node_id, -1)


def group_layout(node_ids: list[str], groups: int) -> list[list[str]]:
    """The groups' members: the ids in natural order (n2 before n10), cut into equal runs.

    Raises:
        ValueError: the nodes cannot be cut into ``groups`` equal groups.
    """
    ids = sorted(node_ids, key=_natural)
    if groups < 1 or len(ids) % groups:
        raise ValueError(f"{len(ids)} nodes cannot form {groups} equal groups; use a multiple "
                         f"of {groups} nodes (e.g. --nodes {3 * max(groups, 1)})")
    size = len(ids) // groups
    return [ids[i * size:(i + 1) * size] for i in range(groups)]


def validate_txn(op: dict[str, Any]) -> str | None:
    """Why a client op is malformed, or None."""
    f = op.get("f")
    if f not in CLIENT_OPS:
        return f"unknown f {f!r}; expected one of {', '.join(CLIENT_OPS)} (or a group command)"
    if f == "txn":
        v = op.get("value")
        if not isinstance(v, list) or not v:
            return f"txn value must be a non-empty list of micro-ops, got {v!r}"
        for m in v:
            if not (isinstance(m, list) and len(m) == 3 and m[0] in MICRO_OPS):
                return f"bad micro-op {m!r}; expected [f, key, value] with f in {', '.join(MICRO_OPS)}"
    return None


class ShardServer(RaftServer):
    """A shardkv node. Build from parsed args, then ``await run()``."""

    protocol = "shardkv"

    def __init__(self, args: argparse.Namespace, bugs: frozenset[str] | None = None) -> None:
        super().__init__(args, parse_bugs(args.bug) if bugs is None else bugs)
        self.members = group_layout([self.id, *self.peers], args.groups)
        self.group = next(g for g, ms in enumerate(self.members) if self.id in ms)
        self.groups = args.groups
        self.shards = args.shards or 4 * args.groups
        self.group_of_node = {n: g for g, ms in enumerate(self.members) for n in ms}
        # The router's shard map: shard -> (group, epoch); the group's own state wins.
        self.shard_map: dict[int, tuple[int, int]] = {
            s: (initial_owner(s, self.groups), 0) for s in range(self.shards)}
        self.prefer: dict[int, str] = {}  # group -> node that last answered
        self.calls: dict[str, asyncio.Future[Result]] = {}
        self.prepared_seen: dict[str, float] = {}  # txid -> when this leader first saw it
        self.recover_after = args.recover_after
        self.background: set[asyncio.Task[Any]] = set()
        self.stats = {"txn": 0, "committed": 0, "aborted": 0, "unknown": 0}

    # ------------------------------------------------------------------ raft hooks

    def _recover(self) -> None:
        hs, snap, entries = self.storage.load()
        group_peers = [p for p in self.members[self.group] if p != self.id]
        self.core = RaftNode(self.id, group_peers, self.config, self.rng,
                             hard_state=hs, snapshot=snap, entries=entries)
        self.kv = self._restore_state(snap.data)
        self.applied = snap.index
        self.log.info("group %d of %d (%s), %d shards; recovered term=%d commit=%d snapshot=%d "
                      "entries=%d bugs=%s", self.group, self.groups, ",".join(self.members[self.group]),
                      self.shards, hs.term, hs.commit, snap.index, len(entries),
                      ",".join(sorted(self.bugs)) or "-")

    def _restore_state(self, data: Any) -> ShardState:
        return ShardState.restore(data, self.group, self.groups, self.shards, self.bugs)

    def _serve_without_leader(self, op: dict[str, Any]) -> Result | None:
        return None

    def _answer_before_commit(self, op: dict[str, Any]) -> Result | None:
        return None

    async def run(self) -> None:
        task = asyncio.create_task(self._maintain(), name="maintain")
        self.background.add(task)
        try:
            await super().run()
        finally:
            task.cancel()

    def status(self) -> dict[str, Any]:
        st = super().status()
        st.update(group=self.group, groups=self.groups, shards=self.shards,
                  members=self.members[self.group], txns=dict(self.stats),
                  owned=sorted(int(s) for s, r in self.kv.shard.items() if r["own"]),
                  locks=len(self.kv.locks), prepared=len(self.kv.prepared),
                  handing=len(self.kv.to_hand_off()))
        return st

    def log_context(self) -> str:
        assert self.core is not None
        return f"[g{self.group} term {self.core.term} {self.core.role}]"

    # ------------------------------------------------------------------ peers

    def _on_peer(self, sender: str, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "gop":
            self._spawn(self._serve_gop(sender, msg))
        elif t == "gop_resp":
            fut = self.calls.pop(msg.get("rid"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(msg["res"])
        else:
            super()._on_peer(sender, msg)

    async def _serve_gop(self, sender: str, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if not isinstance(op, dict) or op.get("f") not in GROUP_OPS:
            res = fail("bad-op", detail="only group commands travel between groups")
        else:
            res = await self.execute(op)
        assert self.transport is not None
        self.transport.send(sender, {"t": "gop_resp", "rid": msg["rid"], "res": res})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # ------------------------------------------------------------------ ops

    async def execute(self, op: dict[str, Any], allow_forward: bool = True) -> Result:
        f = op.get("f") if isinstance(op, dict) else None
        if f in GROUP_OPS:
            return await self._replicate(op, allow_forward)
        problem = validate_txn(op) if isinstance(op, dict) else "op must be an object"
        if problem is not None:
            return fail("bad-op", detail=problem)
        if f == "txn":
            return await self.coordinate(op["value"])
        micro = {"read": "r", "write": "w", "append": "append"}[f]
        res = await self.coordinate([[micro, op.get("key"), op.get("value")]])
        if res["type"] == "ok":
            res = {**res, "value": res["value"][0][2]}
        return res

    async def _replicate(self, op: dict[str, Any], allow_forward: bool = True) -> Result:
        """Run a group command in this node's group log (at the leader)."""
        core = self.core
        assert core is not None
        if core.role != LEADER:
            leader = core.leader
            if allow_forward and leader is not None and leader in self.peers:
                return await self._forward(leader, op)
            return fail("not-leader", leader=leader)
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        rid = f"{self.id}:{self.boot}:{next(self._ids)}"
        try:
            index = core.propose({"id": rid, "op": op})
        except NotLeader as e:
            return fail("not-leader", leader=e.leader)
        self._wake.set()
        self.pending[index] = (rid, fut)
        try:
            return await self._wait(fut, self.op_timeout)
        finally:
            p = self.pending.get(index)
            if p is not None and p[1] is fut:
                del self.pending[index]

    async def group_call(self, g: int, op: dict[str, Any], timeout: float) -> Result:
        """Run a group command in group ``g``; ``info`` when the answer may be lost."""
        if g == self.group:
            return await self._within(self._replicate(op), timeout)
        members = self.members[g]
        first = self.prefer.get(g, members[0])
        order = [first, *(m for m in members if m != first)]
        deadline = time.monotonic() + timeout
        res: Result = fail("unreachable", group=g)
        for node in order:
            left = deadline - time.monotonic()
            if left <= 0.01:
                break
            res = await self._call(node, op, left)
            if res["type"] == "fail" and res.get("error") in ("unreachable", "not-leader"):
                hint = res.get("leader")
                if hint in members and hint != node:
                    self.prefer[g] = hint
                continue
            self.prefer[g] = node
            return res
        return res

    async def _within(self, coro: Any, timeout: float) -> Result:
        try:
            return await asyncio.wait_for(coro, timeout)
        except TimeoutError:
            return info("timeout")

    async def _call(self, node: str, op: dict[str, Any], timeout: float) -> Result:
        assert self.transport is not None
        rid = f"{self.id}:{self.boot}:{next(self._ids)}"
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.calls[rid] = fut
        try:
            if not self.transport.send(node, {"t": "gop", "rid": rid, "op": op}):
                return fail("unreachable", node=node)  # never left this node
            return await self._wait(fut, timeout)
        finally:
            self.calls.pop(rid, None)

    # ------------------------------------------------------------------ routing

    def route(self, shard: int) -> int:
        """The group this node believes holds ``shard`` now."""
        g, e = self.shard_map[shard]
        mine, my_epoch = self.kv.owner_hint(shard)
        if mine is not None and my_epoch >= e:
            return mine
        return g

    def learn(self, res: Result) -> None:
        """Update the shard map from a ``wrong-group`` answer."""
        if res.get("error") == "wrong-group" and res.get("owner") is not None:
            s, g, e = int(res["shard"]), int(res["owner"]), int(res["epoch"])
            if e > self.shard_map[s][1] or (e == self.shard_map[s][1] and g != self.shard_map[s][0]):
                self.shard_map[s] = (g, e)

    # ------------------------------------------------------------------ coordinator

    async def coordinate(self, mops: list[Any]) -> Result:
        """Run one transaction across the groups holding its keys (see the module docstring).

        A transaction refused for a lock is not retried here: it answers ``fail`` and
        the client decides (retrying inside the node was measured to lower throughput:
        the retries hold their locks longer and collide more).
        """
        self.stats["txn"] += 1
        res = await self._attempt(mops)
        self._count(res)
        return res

    async def _attempt(self, mops: list[Any]) -> Result:
        budget = self.op_timeout
        parts: dict[int, list[int]] = {}
        for i, m in enumerate(mops):
            parts.setdefault(self.route(shard_of(m[1], self.shards)), []).append(i)
        if len(parts) == 1:
            (g,) = parts
            res = await self.group_call(g, {"f": "txn1", "value": mops}, budget)
            self.learn(res)
            return res
        tx = f"{self.id}:{self.boot}:{next(self._ids)}"
        coord = min(parts)
        sub = {g: [mops[i] for i in idx] for g, idx in parts.items()}
        groups = sorted(parts)
        votes: list[Result] = []
        deadline = time.monotonic() + 0.7 * budget
        for g in groups:  # one group after another, in group order (see the module docstring)
            v = await self.group_call(g, {"f": "prepare", "tx": tx, "coord": coord, "value": sub[g]},
                                      max(0.05, deadline - time.monotonic()))
            self.learn(v)
            votes.append(v)
            if v["type"] != "ok":
                break
        if not all(v["type"] == "ok" for v in votes):
            # Commit is never recorded for tx now (only this coordinator would record it):
            # the outcome is abort whatever happens next.
            for g in groups:
                self._spawn(self.group_call(g, {"f": "abort", "tx": tx}, budget))
            bad = next(v for v in votes if v["type"] != "ok")
            return fail("aborted", cause=bad.get("error"))
        out: list[Any] = list(mops)
        for g, v in zip(groups, votes, strict=True):
            for i, m in zip(parts[g], v["value"], strict=True):
                out[i] = m
        if "no-2pc-recovery" in self.bugs:
            # BUG: the decision lives only in this process; the client hears ok before
            # any participant commits, and the commits go out one at a time.
            self._spawn(self._commit_one_by_one(tx, groups, budget))
            return {"type": "ok", "value": out}
        d = await self.group_call(coord, {"f": "decide", "tx": tx, "value": "commit"}, 0.4 * budget)
        if d["type"] == "ok" and d["value"] == "commit":
            await asyncio.gather(*(self.group_call(g, {"f": "commit", "tx": tx}, 0.3 * budget)
                                   for g in groups))
            return {"type": "ok", "value": out}
        if d["type"] == "ok" or d["type"] == "fail":
            # Recorded abort (recovery got there first), or the decide never ran.
            for g in groups:
                self._spawn(self.group_call(g, {"f": "abort", "tx": tx}, budget))
            return fail("aborted", cause="decided-abort" if d["type"] == "ok" else d.get("error"))
        return info("decision-unknown")

    async def _commit_one_by_one(self, tx: str, groups: list[int], budget: float) -> None:
        for g in groups:
            await self.group_call(g, {"f": "commit", "tx": tx}, budget)

    def _count(self, res: Result) -> None:
        key = {"ok": "committed", "fail": "aborted"}.get(res["type"], "unknown")
        self.stats[key] += 1

    # ------------------------------------------------------------------ recovery

    async def _maintain(self) -> None:
        """Leader's periodic work: resolve stale prepared transactions, hand off shards."""
        while True:
            await asyncio.sleep(self.args.recover_ms / 1000.0)
            if self.core is None or self.core.role != LEADER:
                self.prepared_seen.clear()
                continue
            now = time.monotonic()
            for tx in list(self.kv.prepared):
                first = self.prepared_seen.setdefault(tx, now)
                if now - first >= self.recover_after:
                    self.prepared_seen[tx] = now  # retry no sooner than recover_after
                    self._spawn(self._resolve(tx))
            for tx in [t for t in self.prepared_seen if t not in self.kv.prepared]:
                del self.prepared_seen[tx]
            for s, epoch, to, data in self.kv.to_hand_off():
                self._spawn(self._hand_off(s, epoch, to, data))

    async def _resolve(self, tx: str) -> None:
        rec = self.kv.prepared.get(tx)
        if rec is None:
            return
        if "no-2pc-recovery" in self.bugs:
            outcome = "abort"  # BUG: presumed abort; there is no recorded decision to ask
        else:
            d = await self.group_call(int(rec["coord"]), {"f": "decide", "tx": tx, "value": "abort"},
                                      self.op_timeout)
            if d["type"] != "ok":
                return  # try again later
            outcome = d["value"]
        self.log.info("recovery: %s %s", outcome, tx)
        await self._replicate({"f": outcome, "tx": tx})

    async def _hand_off(self, s: int, epoch: int, to: int, data: dict[str, Any]) -> None:
        res = await self.group_call(to, {"f": "shard-in", "shard": s, "epoch": epoch, "data": data},
                                    self.op_timeout)
        if res["type"] == "ok":
            self.log.info("shard %d (epoch %d) handed to group %d", s, epoch, to)
            await self._replicate({"f": "shard-handed", "shard": s, "epoch": epoch})


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_raft_arguments(p)
    p.add_argument("--groups", type=int, default=1, help="replica groups in the cluster (default 1)")
    p.add_argument("--shards", type=int, default=0, help="shards (default 4 per group)")
    p.add_argument("--recover-after", type=float, default=2.0,
                   help="seconds a prepared transaction waits before its outcome is asked for")
    p.add_argument("--recover-ms", type=float, default=200.0,
                   help="how often the leader looks for stale prepared transactions (ms)")
    p.epilog = "seeded bugs (--bug): " + ", ".join(BUGS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jepsenlike.models.shardkv",
        description="Sharded transactional key-value node over Raft groups (see docs/shardkv.md).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    return run_node(ShardServer, parse_bugs, args)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
