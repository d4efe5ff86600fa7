"""The history writer on a full disk: each line once, only complete lines, a clear error.

The first tests fake the failing file (a short write, then ENOSPC); the last
one fills a real 256 KiB tmpfs when the test may mount one (root).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest

from jepsenlike.history_io import HistoryWriteError, HistoryWriter, read_history


class FailingFile:
    """Wraps the writer's raw file: after ``budget`` bytes, short writes then ENOSPC."""

    def __init__(self, real, budget: int) -> None:
        self.real = real
        self.budget = budget
        self.calls = 0

    def write(self, data) -> int:
        self.calls += 1
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.budget)
        self.budget -= n
        return self.real.write(bytes(data[:n]))

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def closed(self) -> bool:
        return self.real.closed

    def close(self) -> None:
        self.real.close()


def record_until_failure(w: HistoryWriter, limit: int = 10_000) -> tuple[int, HistoryWriteError]:
    for i in range(limit):
        try:
            w.record((i // 2) % 5, "invoke" if i % 2 == 0 else "ok", "write", key="k", value=i // 2)
        except HistoryWriteError as e:
            return i, e
    raise AssertionError("the writer never failed")


def check_file(path, recorded: int) -> None:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "a partial line was left behind"
    lines = raw.splitlines()
    assert len(lines) == recorded
    indices = [json.loads(line)["index"] for line in lines]
    assert indices == list(range(recorded)), "no line twice, no gap"
    h = read_history(path)
    assert len(h) == recorded and not h.torn_tail


def test_a_short_write_then_enospc_leaves_only_complete_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path)
    w._fh = FailingFile(w._fh, budget=1000)  # ends mid-line
    recorded, e = record_until_failure(w)
    assert 0 < recorded < 100
    assert e.errno == errno.ENOSPC and e.path == path
    msg = str(e)
    assert str(path) in msg and f"holds the {recorded} events recorded before" in msg
    assert "\n" not in msg
    check_file(path, recorded)
    assert len(w.ops) == recorded
    # every later record fails the same way and writes nothing
    with pytest.raises(HistoryWriteError):
        w.record(0, "invoke", "read")
    assert w.failed is e
    w.close()
    check_file(path, recorded)


def test_a_flush_that_fails_is_never_written_twice(tmp_path):
    # the old writer kept the failed line in its buffer and wrote it again with the next one
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path)
    for i in range(3):
        w.record(0, "invoke", "write", value=i)
        w.record(0, "ok", "write", value=i)
    size = path.stat().st_size
    w._fh = FailingFile(w._fh, budget=0)
    with pytest.raises(HistoryWriteError):
        w.record(0, "invoke", "write", value=99)
    w._fh.budget = 10**6  # space is back: the writer stays stopped, the file unchanged
    with pytest.raises(HistoryWriteError):
        w.record(0, "invoke", "write", value=100)
    assert path.stat().st_size == size
    check_file(path, 6)


def test_other_write_errors_are_reported_too(tmp_path):
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path)
    w.record(0, "invoke", "read")

    class Broken(FailingFile):
        def write(self, data) -> int:
            self.real.write(bytes(data[:7]))  # some bytes reach the file, then EIO
            raise OSError(errno.EIO, "Input/output error")

    w._fh = Broken(w._fh, 0)
    with pytest.raises(HistoryWriteError) as e:
        w.record(0, "ok", "read", value=1)
    assert e.value.errno == errno.EIO and "Input/output error" in str(e.value)
    check_file(path, 1)


@pytest.fixture()
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the fake-file tests above cover the logic")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_real_full_disk(small_tmpfs):
    path = small_tmpfs / "history.jsonl"
    w = HistoryWriter(path)
    recorded, e = record_until_failure(w, limit=100_000)
    assert e.errno == errno.ENOSPC
    assert recorded > 1000  # 256 KiB of ~90-byte lines
    w.close()
    check_file(path, recorded)
