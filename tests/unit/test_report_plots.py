"""Plots: PNG files drawn with matplotlib's Agg canvas, fault intervals shaded."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib")

from matplotlib.image import imread  # noqa: E402

from jepsenlike.report import load_run  # noqa: E402
from jepsenlike.report.plots import PLOT_FILES, write_plots  # noqa: E402
from jepsenlike.report.samples import write_sample_run  # noqa: E402


def test_three_pngs_are_written_without_touching_pyplot(tmp_path):
    import sys

    run = load_run(write_sample_run(tmp_path, "invalid-register", seed=7))
    paths = write_plots(run)
    assert [p.name for p in paths] == list(PLOT_FILES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 500
    assert "matplotlib.pyplot" not in sys.modules, "pyplot would switch a global backend"


def _spans(fig) -> dict[str, list[tuple[float, float]]]:
    """The shaded x intervals of a figure's axes, by fault kind (the patch's gid)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for patch in fig.axes[0].patches:
        gid = patch.get_gid() or ""
        if gid.startswith("fault:"):
            xs = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
            out.setdefault(gid[len("fault:"):], []).append((round(float(min(xs)), 6), round(float(max(xs)), 6)))
    return out


@pytest.mark.parametrize("figure", ["latency_raw_figure", "throughput_figure", "latency_quantiles_figure"])
def test_every_plot_shades_each_fault_interval(tmp_path, figure):
    from jepsenlike.report import plots
    from jepsenlike.report.model import fault_intervals

    run = load_run(write_sample_run(tmp_path, "valid-register", seed=7))
    faults, _ = fault_intervals(run.ops)
    fig = getattr(plots, figure)(run)
    spans = _spans(fig)
    for f in faults:
        assert (round(f.start_ns / 1e9, 6), round(f.end_ns / 1e9, 6)) in spans[f.kind]
