"""Reports of stored runs: ``report.html`` and plots, from a run directory alone.

Theory of operation
-------------------
:func:`write_run_report` is the one call the runner (and ``analyze``, and
``serve`` for older runs) makes after ``results.json`` is written. It reads
the run directory (:func:`.model.load_run`), draws the plots into
``<run_dir>/plots/`` (:mod:`.plots`, matplotlib Agg) and writes
``<run_dir>/report.html`` (:mod:`.html`), which embeds the plots so the page
is one self-contained file.

A report must never turn a run into a crash: if matplotlib is missing or a
plot fails, the page is written without plots and says why; the exception is
only raised for a run directory that does not exist.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

from jepsenlike.report.model import (
    PLOTS_DIR,
    REPORT_FILE,
    FaultInterval,
    RunData,
    Witness,
    fault_intervals,
    find_witnesses,
    load_run,
    verdict_word,
)

__all__ = [
    "PLOTS_DIR",
    "REPORT_FILE",
    "FaultInterval",
    "ReportFiles",
    "RunData",
    "Witness",
    "fault_intervals",
    "find_witnesses",
    "load_run",
    "verdict_word",
    "write_run_report",
]


@dataclass
class ReportFiles:
    """What :func:`write_run_report` wrote; ``problems`` says what it could not."""

    report: Path
    plots: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_run_report(run_dir: str | Path, *, plots: bool = True, max_bytes: int | None = None) -> ReportFiles:
    """Write ``report.html`` and ``plots/*.png`` for one run directory.

    Args:
        run_dir: a run directory (``<store>/<test>/<timestamp>``).
        plots: draw the PNG plots (needs matplotlib).
        max_bytes: size cap of the page (default about 20 MB).

    Raises:
        JepsenlikeError: ``run_dir`` is not a directory.
    """
    from jepsenlike.report.html import MAX_BYTES, write_report

    run = load_run(run_dir)
    problems: list[str] = []
    pngs: list[Path] = []
    if plots:
        try:
            from jepsenlike.report.plots import write_plots

            pngs = write_plots(run)
        except ImportError as e:
            problems.append(f"no plots: {e} (pip install matplotlib)")
        except Exception as e:  # a plot bug must not cost the user the report
            problems.append(f"plots failed: {type(e).__name__}: {e}")
            (run.run_dir / "plots-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    run.notes.extend(problems)
    out = write_report(run, pngs, max_bytes=max_bytes or MAX_BYTES)
    return ReportFiles(out, pngs, problems)
