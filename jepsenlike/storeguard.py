"""A run that cannot write its store stops cleanly instead of crashing or corrupting the history.

Theory of operation
-------------------
The store can fill up (``ENOSPC``), go read-only or fail in any other way in
the middle of a run. What must hold then: the run stops as if interrupted
(faults healed, nodes stopped, by the runner's ordinary ``finally``), it says
why in ``test.json`` and ``results.json``, the history on disk ends at its
last complete line, so ``jepsenlike analyze`` can check it, and the user sees
one line, not a traceback.

* :class:`GuardedHistory` wraps the history writer. The first write that fails
  (any exception of the writer: ``OSError`` or the writer's own error type)
  records the reason, closes the writer, cuts the file back to its last
  complete line (a failed flush may have left half a line; truncating needs no
  free space) and raises :class:`StoreWriteError`; so does every later
  ``record`` call. :meth:`GuardedHistory.check`, called by the runner's main
  loop, raises it in the main thread whichever thread hit the error first.
* :class:`GuardedLog` does the same for ``nemesis.log``.
* :class:`Ballast` keeps a small reserve file in the run directory while the run
  is going; :meth:`Ballast.release` deletes it before the final ``test.json``
  and ``results.json`` are written, so that a full disk still has room for
  the marker that says the run was interrupted and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path
from typing import Any

from jepsenlike.errors import JepsenlikeError

STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""OS errors that mean the store itself failed (not a bug of the harness)."""
BALLAST_FILE = ".reserve"
BALLAST_BYTES = 64 * 1024


class StoreWriteError(JepsenlikeError):
    """The run's store could not be written; the run stopped (see the message for where and why)."""


def describe(path: Path, error: BaseException) -> str:
    """What went wrong, in a sentence: ``the store is full writing X ([Errno 28] ...)``."""
    err = error.__cause__ if isinstance(error.__cause__, OSError) else error
    if isinstance(err, OSError) and err.errno == 28:
        what = "the store is full"
    elif isinstance(err, OSError) and err.errno == 30:
        what = "the store became read-only"
    else:
        what = "the store could not be written"
    return f"{what} writing {path} ({type(err).__name__}: {err})"


def cut_to_last_line(path: Path) -> int:
    """Truncate ``path`` after its last newline (a torn tail goes); returns the new size."""
    try:
        with open(path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            pos = size
            while pos > 0:
                step = min(4096, pos)
                fh.seek(pos - step)
                chunk = fh.read(step)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = pos - step + nl + 1
                    if keep != size:
                        fh.truncate(keep)
                    return keep
                pos -= step
            fh.truncate(0)
            return 0
    except OSError:
        return -1


class GuardedHistory:
    """A history writer whose first failed write stops the run (see the module doc)."""

    def __init__(self, writer: Any, path: Path) -> None:
        self.writer = writer
        self.path = Path(path)
        self.failure: str | None = None
        self._lock = threading.Lock()

    @property
    def start_ns(self) -> int:
        return int(self.writer.start_ns)

    @property
    def ops(self) -> Any:
        return self.writer.ops

    def fail(self, reason: str) -> None:
        """Record the first failure; close the writer and cut the file to its last complete line."""
        with self._lock:
            if self.failure is not None:
                return
            self.failure = reason
        with contextlib.suppress(Exception):  # the failed flush may fail again: the file is closed anyway
            self.writer.close()
        cut_to_last_line(self.path)

    def check(self) -> None:
        """Raise :class:`StoreWriteError` if any write has failed, in any thread."""
        if self.failure is not None:
            raise StoreWriteError(self.failure)

    def record(self, *args: Any, **kwargs: Any) -> Any:
        self.check()
        try:
            return self.writer.record(*args, **kwargs)
        except Exception as e:
            self.fail(describe(self.path, e))
            raise StoreWriteError(self.failure) from e

    def close(self) -> None:
        if self.failure is None:
            try:
                self.writer.close()
            except Exception as e:
                self.fail(describe(self.path, e))
        # the history must end with a complete line whatever happened
        if self.failure is not None:
            cut_to_last_line(self.path)


class GuardedLog:
    """A text log (``nemesis.log``) whose write errors stop the run through the same guard."""

    def __init__(self, fh: Any, path: Path, guard: GuardedHistory | None = None) -> None:
        self.fh, self.path, self.guard = fh, Path(path), guard
        self.failure: str | None = None

    def _failed(self, e: BaseException) -> StoreWriteError:
        self.failure = self.failure or describe(self.path, e)
        if self.guard is not None:
            self.guard.fail(self.failure)
        return StoreWriteError(self.failure)

    def write(self, text: str) -> int:
        if self.failure is not None:
            raise StoreWriteError(self.failure)
        try:
            return int(self.fh.write(text))
        except OSError as e:
            raise self._failed(e) from e

    def flush(self) -> None:
        if self.failure is not None:
            raise StoreWriteError(self.failure)
        try:
            self.fh.flush()
        except OSError as e:
            raise self._failed(e) from e

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()


class Ballast:
    """A reserve file, deleted to make room for the run's final records (see the module doc)."""

    def __init__(self, run_dir: Path, size: int = BALLAST_BYTES) -> None:
        self.path = Path(run_dir) / BALLAST_FILE
        try:
            with open(self.path, "wb") as fh:
                fh.write(b"\0" * size)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            self.release()
            raise StoreWriteError(describe(self.path, e) + "; free some space or choose another --store") from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
