"""Real Raft and Paxos node processes on damaged data dirs: refusal, exit status, repair.

A node whose WAL has a flipped byte in the middle, or whose WAL is empty or missing
while ``identity.json`` says it had state, must exit with status 3 and one ERROR line
naming the file (and, for a bad record, its byte offset and number), and leave the
file as it was; ``--repair`` cuts the WAL at the bad record and the node serves.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jepsenlike.models.server.node import EXIT_DATA_DIR
from jepsenlike.models.server.wal import scan_records
from tests.integration import cluster as nc

pytestmark = pytest.mark.integration

WAL = {"raft": "raft.wal", "paxos": "paxos.wal"}


@pytest.fixture(params=["raft", "paxos"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_cluster(protocol: str, tmp_path: Path) -> Iterator[Callable[..., nc.NodeCluster]]:
    yield from nc.cluster_fixture(f"jepsenlike.models.{protocol}", tmp_path, seed=13)


def refused(c: nc.NodeCluster, node: str) -> str:
    """Start ``node`` as the harness would; it must refuse. Returns its one stderr line."""
    r = subprocess.run(c.argv(node), capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_DATA_DIR, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert " ERROR " in lines[0] and "refusing to start: " in lines[0]
    return lines[0]


def test_a_flipped_byte_mid_wal_is_refused_then_repaired(make_cluster, protocol) -> None:
    c = make_cluster(3)
    with nc.AppendLoad(c, threads=2) as load:
        load.wait_acked(60)
    for i in c.ids:
        c.kill(i)
    wal = Path(c.data_dir("n1")) / WAL[protocol]
    data = bytearray(wal.read_bytes())
    payloads, end, damage = scan_records(bytes(data))
    assert damage is None and end == len(data) and len(payloads) > 10
    k = len(payloads) // 2  # a record in the middle (0-based)
    off = sum(8 + len(p) for p in payloads[:k])
    data[off + 8 + len(payloads[k]) // 2] ^= 0x04
    wal.write_bytes(bytes(data))

    line = refused(c, "n1")
    assert f"{wal}: record {k + 1} at byte offset {off} is corrupt" in line
    assert "--repair" in line
    assert wal.read_bytes() == bytes(data)  # the evidence stays on disk

    c.extra = (*c.extra, "--repair")
    c.start("n1")
    c.wait_up("n1")
    assert os.path.getsize(wal) >= off  # cut there, then the node appended again
    log = c.log("n1")
    assert f"repair: cut {wal} at byte offset {off} (record {k + 1}" in log
    assert f"{len(data) - off} bytes dropped" in log


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_a_lost_wal_is_refused(make_cluster, protocol, damage) -> None:
    c = make_cluster(1)
    c.kill("n1")
    wal = Path(c.data_dir("n1")) / WAL[protocol]
    assert wal.stat().st_size > 0  # the identity record, at least
    if damage == "empty":
        wal.write_bytes(b"")
    else:
        wal.unlink()
    line = refused(c, "n1")
    what = "empty (0 bytes)" if damage == "empty" else "missing"
    assert f"{wal}: the WAL is {what} but identity.json says {protocol} node n1" in line
    assert wal.exists() == (damage == "empty")  # untouched: not recreated


def test_another_nodes_data_dir_is_refused(make_cluster, protocol) -> None:
    c = make_cluster(1)
    c.kill("n1")
    argv = c.argv("n1")
    argv[argv.index("--id") + 1] = "n9"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_DATA_DIR
    assert f"belongs to {protocol} node n1 of cluster" in r.stderr
    assert f"not {protocol} node n9" in r.stderr
