"""Plots of a run, as PNG files: latency, throughput, latency quantiles.

Theory of operation
-------------------
Everything is computed from the history (through :mod:`.model`), so a stored
run can be plotted again at any time. matplotlib is used through its
object API with the Agg canvas (``Figure`` + ``FigureCanvasAgg``), never
through ``pyplot``: no global backend is switched, no window can open, and it
works on a headless CI machine.

* ``latency-raw.png``: one point per client op at its invocation time, its
  latency on a log scale; colour by ``f``, marker by outcome (ok ``o``, fail
  ``x``, info ``^``; ops that never completed are left out, they have no
  latency).
* ``throughput.png``: completions per second by outcome, in time buckets.
* ``latency-quantiles.png``: per ``f``, p50/p95/p99/max of ``ok`` latencies per
  time bucket.

Every plot shades the fault intervals (:func:`.model.fault_intervals`), one
colour per kind of fault, so a latency spike can be read against the fault
that caused it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from jepsenlike.report.model import PLOTS_DIR, RunData, fault_intervals, merge_same_span, op_pairs

PLOT_FILES = ("latency-raw.png", "throughput.png", "latency-quantiles.png")
FAULT_COLORS = {"kill": "#d50000", "pause": "#1565c0", "partition": "#6a1b9a", "start-partition": "#6a1b9a"}
OUTCOME_COLORS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00"}
OUTCOME_MARKERS = {"ok": "o", "fail": "x", "info": "^"}
DPI = 100


def _figure(title: str) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("time since start (s)")
    ax.grid(True, alpha=0.3)
    return fig, ax


def _shade_faults(ax: Any, run: RunData) -> None:
    faults, instants = fault_intervals(run.ops, run.end_ns)
    faults = merge_same_span(faults)
    labelled: set[str] = set()
    for iv in faults:
        color = FAULT_COLORS.get(iv.kind, "#777777")
        ax.axvspan(iv.start_ns / 1e9, iv.end_ns / 1e9, color=color, alpha=0.12, lw=0,
                   label=None if iv.kind in labelled else f"{iv.kind} in force", gid=f"fault:{iv.kind}")
        labelled.add(iv.kind)
    for ev in instants:
        ax.axvline(ev.time_ns / 1e9, color="#555555", lw=0.8, ls=":")


def _bucket_s(run: RunData) -> float:
    span = run.end_ns / 1e9
    for b in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if span / b <= 200:
            return b
    return span / 200


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_latency_raw(run: RunData, path: Path) -> Path:
    return _save(latency_raw_figure(run), path)


def latency_raw_figure(run: RunData) -> Any:
    fig, ax = _figure(f"{run.name}: latency of each op (by invocation time)")
    series: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p in op_pairs(run.ops):
        lat = p.latency_ns
        if lat is None:
            continue
        xs, ys = series[(p.inv.f, p.outcome)]
        xs.append(p.inv.time / 1e9)
        ys.append(max(lat, 1000) / 1e6)
    fs = sorted({f for f, _ in series})
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    for (f, outcome), (xs, ys) in sorted(series.items()):
        ax.scatter(xs, ys, s=8 if outcome == "ok" else 18, marker=OUTCOME_MARKERS.get(outcome, "."),
                   color=palette[fs.index(f) % len(palette)], alpha=0.6, label=f"{f} {outcome}", linewidths=1)
    _shade_faults(ax, run)
    ax.set_ylabel("latency (ms)")
    if series:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no completed client ops", transform=ax.transAxes, ha="center")
    ax.set_xlim(0, max(run.end_ns / 1e9, 0.001))
    ax.legend(loc="upper left", fontsize=7, ncol=4, markerscale=1.5)
    return fig


def plot_throughput(run: RunData, path: Path) -> Path:
    return _save(throughput_figure(run), path)


def throughput_figure(run: RunData) -> Any:
    fig, ax = _figure(f"{run.name}: throughput (completions per second)")
    b = _bucket_s(run)
    n = int(run.end_ns / 1e9 / b) + 1
    counts: dict[str, list[int]] = {k: [0] * n for k in ("ok", "fail", "info")}
    for p in op_pairs(run.ops):
        if p.comp is None or p.outcome not in counts:
            continue
        counts[p.outcome][min(n - 1, int(p.comp.time / 1e9 / b))] += 1
    xs = [(i + 0.5) * b for i in range(n)]
    for outcome, ys in counts.items():
        if any(ys):
            ax.plot(xs, [y / b for y in ys], color=OUTCOME_COLORS[outcome], label=outcome, lw=1.2)
    _shade_faults(ax, run)
    ax.set_ylabel(f"ops/s ({b:g} s buckets)")
    ax.set_xlim(0, max(run.end_ns / 1e9, 0.001))
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    return fig


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.999999) - 1))]


def plot_latency_quantiles(run: RunData, path: Path) -> Path:
    return _save(latency_quantiles_figure(run), path)


def latency_quantiles_figure(run: RunData) -> Any:
    fig, ax = _figure(f"{run.name}: latency quantiles of ok ops")
    b = _bucket_s(run) * 5
    per: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in op_pairs(run.ops):
        if p.outcome == "ok" and p.latency_ns is not None:
            per[p.inv.f][int(p.inv.time / 1e9 / b)].append(max(p.latency_ns, 1000) / 1e6)
    styles = {0.5: "-", 0.95: "--", 0.99: "-.", 1.0: ":"}
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for n, (f, buckets) in enumerate(sorted(per.items())):
        idx = sorted(buckets)
        xs = [(i + 0.5) * b for i in idx]
        for q, style in styles.items():
            ys = [_quantile(sorted(buckets[i]), q) for i in idx]
            name = "max" if q == 1.0 else f"p{q * 100:g}"
            ax.plot(xs, ys, style, color=palette[n % len(palette)], lw=1.2, label=f"{f} {name}")
    _shade_faults(ax, run)
    ax.set_ylabel(f"latency (ms), {b:g} s buckets")
    if per:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no ok client ops", transform=ax.transAxes, ha="center")
    ax.set_xlim(0, max(run.end_ns / 1e9, 0.001))
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    return fig


def write_plots(run: RunData, out_dir: Path | None = None) -> list[Path]:
    """Write the three plots into ``<run_dir>/plots/`` and return their paths.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib  # noqa: F401  (fail early, with the module's own message)

    d = out_dir or run.run_dir / PLOTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    return [
        plot_latency_raw(run, d / PLOT_FILES[0]),
        plot_throughput(run, d / PLOT_FILES[1]),
        plot_latency_quantiles(run, d / PLOT_FILES[2]),
    ]
