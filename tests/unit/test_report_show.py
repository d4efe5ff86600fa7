"""``jepsenlike show``: the terminal summary of a stored run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jepsenlike import cli
from jepsenlike.report import find_witnesses, load_run
from jepsenlike.report.samples import write_sample_run


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):
    """``jepsenlike`` with ``show`` registered (whether or not cli.py lists it yet)."""
    if "show" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "show"])
    return cli.main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    s = tmp_path_factory.mktemp("store")
    for kind in ("valid-register", "invalid-register"):  # the newest is store/latest
        run = write_sample_run(s, kind, seed=7)
        (run / "report.html").unlink(missing_ok=True)  # whether or not the runner writes one
        shutil.rmtree(run / "plots", ignore_errors=True)
    return s


def test_show_latest_prints_verdict_witness_and_paths(main, store, capsys):
    assert main(["show", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    run_dir = (store / "latest").resolve()
    w = find_witnesses(load_run(run_dir).results)[0]
    assert "INVALID" in out
    assert "sample-invalid-register" in out
    assert w.explanation in out
    assert "longest partial linearization" in out
    assert w.record["op"]["description"] in out
    assert f"run dir    {run_dir}" in out
    assert "(not written yet" in out
    assert "seed" in out and "kill" in out


def test_show_report_flag_writes_the_report_and_lists_the_plots(main, store, capsys):
    run_dir = next((store / "sample-valid-register").glob("2*"))
    assert main(["show", "--report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "INVALID" not in out
    assert f"report     {run_dir.resolve() / 'report.html'}" in out
    assert (run_dir / "report.html").exists()
    assert out.count("plot       ") == 3


def test_show_accepts_a_test_name_under_the_store(main, store, capsys):
    assert main(["show", "--store", str(store), "sample-valid-register"]) == 0
    assert "sample-valid-register" in capsys.readouterr().out


def test_show_full_lists_every_anomaly(main, store, capsys):
    assert main(["show", "--store", str(store), "--full"]) == 0
    out = capsys.readouterr().out
    n = len(find_witnesses(load_run((store / "latest").resolve()).results))
    assert f"anomaly {n} of {n}" in out


def test_show_without_a_run_names_where_it_looked(main, tmp_path, capsys):
    assert main(["show", "--store", str(tmp_path)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "no run at 'latest'" in err and str(tmp_path) in err


def test_show_prints_fault_coverage_when_results_have_it(main, tmp_path, capsys):
    import json

    run_dir = write_sample_run(tmp_path, "valid-register", seed=7)
    results = json.loads((run_dir / "results.json").read_text())
    results["nemesis"]["coverage"] = {
        "kill": {"status": "fired", "fired": 1, "seconds": 2.5, "attempts": 1},
        "clock": {"status": "refused", "fired": 0, "seconds": 0.0, "reason": "backend lacks clock"},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "fault coverage" in out
    assert "refused" in out and "backend lacks clock" in out
    from jepsenlike.report import write_run_report

    page = write_run_report(run_dir, plots=False).report.read_text()
    assert '<tr class="cov-refused"><td>clock</td><td>refused</td>' in page


def test_show_prints_brackets_literally(main, tmp_path, capsys):
    """Edge relations like [wr] and values like [1, 2] are text, not rich markup."""
    run_dir = write_sample_run(tmp_path, "graph-g1c", seed=3)
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "[wr]" in out
    assert "[['append', 'injected-1', 1]" in out


def test_show_table_cells_keep_bracketed_values(main, tmp_path, capsys):
    """A cas step ``cas [x, y]`` in the partial linearization table is printed whole."""
    import json

    run_dir = write_sample_run(tmp_path, "invalid-register", seed=7)
    results = json.loads((run_dir / "results.json").read_text())
    steps = results["workload"]["failures"][0]["partial_linearizations"][0]["steps"]
    steps[-1]["op"] = "#999 process 1 cas [null, 41]"
    (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["show", str(run_dir)]) == 0
    assert "#999 process 1 cas [null, 41]" in capsys.readouterr().out
