"""report.html, its data and its witnesses, from run directories built without a cluster.

The run directories come from :mod:`jepsenlike.report.samples`: synthetic
histories whose verdict is known by construction (a stale read of a value that
a completed write had overwritten; an injected G1c cycle), checked by the real
checkers through ``jepsenlike.analysis.check_run``.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jepsenlike.history import Op
from jepsenlike.report import find_witnesses, load_run, write_run_report
from jepsenlike.report.html import build_timeline_data, render_report
from jepsenlike.report.model import fault_intervals, op_pairs
from jepsenlike.report.samples import write_sample_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def invalid_run(store: Path) -> Path:
    return write_sample_run(store, "invalid-register", seed=7)


@pytest.fixture(scope="module")
def valid_run(store: Path) -> Path:
    return write_sample_run(store, "valid-register", seed=7)


@pytest.fixture(scope="module")
def graph_run(store: Path) -> Path:
    return write_sample_run(store, "graph-g1c", seed=3)


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m, "the page carries its data"
    return json.loads(m.group(1))


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Collect()
    p.feed(page)
    return p.tags


def _op(i: int, t: int, p: int | str, typ: str, f: str, value=None, key=None) -> Op:
    return Op(index=i, time=t, process=p, type=typ, f=f, key=key, value=value)


# -- the sample runs are what they claim ----------------------------------------------


def test_samples_have_the_verdicts_they_were_built_for(invalid_run, valid_run, graph_run):
    assert json.loads((invalid_run / "results.json").read_text())["valid"] is False
    assert json.loads((valid_run / "results.json").read_text())["valid"] is True
    assert json.loads((graph_run / "results.json").read_text())["valid"] is False


# -- faults ----------------------------------------------------------------------------


def test_fault_intervals_pair_openers_with_their_closers():
    ops = [
        _op(0, 10, "nemesis", "invoke", "kill", "one"),
        _op(1, 11, "nemesis", "info", "kill", {"nodes": ["n2"]}),
        _op(2, 20, "nemesis", "invoke", "pause", "one"),
        _op(3, 21, "nemesis", "info", "pause", {"nodes": ["n3"]}),
        _op(4, 30, "nemesis", "invoke", "start", None),
        _op(5, 31, "nemesis", "info", "start", {"nodes": ["n2"]}),
        # a heal that touched nothing closes nothing
        _op(6, 40, "nemesis", "invoke", "resume", None),
        _op(7, 41, "nemesis", "info", "resume", {"nodes": []}),
        _op(8, 50, "nemesis", "invoke", "start-partition", "halves"),
        _op(9, 51, "nemesis", "info", "start-partition", {"grudge": {"n1": ["n2"], "n2": ["n1"]}}),
        _op(10, 60, "nemesis", "invoke", "stop-partition", None),
        _op(11, 61, "nemesis", "info", "stop-partition", None),
        _op(12, 70, "nemesis", "invoke", "bump-clock", 5),
        _op(13, 71, "nemesis", "info", "bump-clock", {"nodes": ["n1"]}),
        _op(14, 80, "nemesis", "invoke", "flush", None),
        _op(15, 81, "nemesis", "info", "flush", None),
        _op(16, 100, 0, "invoke", "read"),
        _op(17, 101, 0, "ok", "read"),
    ]
    faults, instants = fault_intervals(ops)
    got = {(f.kind, tuple(f.nodes)): (f.start_ns, f.end_ns, f.open) for f in faults}
    assert got[("kill", ("n2",))] == (11, 31, False)
    assert got[("pause", ("n3",))] == (21, 101, True), "never resumed: open to the end"
    assert got[("start-partition", ("n1", "n2"))] == (51, 61, False), "a grudge is one interval"
    assert got[("bump-clock", ("n1",))] == (71, 101, True)
    assert [e.f for e in instants] == ["flush"]


def test_a_failed_fault_opens_no_interval():
    ops = [
        _op(0, 10, "nemesis", "invoke", "kill", "one"),
        Op(1, 11, "nemesis", "info", "kill", value=None, error="OSError: no such process"),
    ]
    faults, _ = fault_intervals(ops)
    assert faults == []


# -- witnesses -------------------------------------------------------------------------


def test_linearizability_witness_names_the_stale_read_and_its_partial_linearization(invalid_run):
    run = load_run(invalid_run)
    ws = find_witnesses(run.results)
    assert ws and ws[0].kind == "linearizability"
    w = ws[0]
    stale = w.blocked[0]
    inv = run.ops[stale]
    comp = next(o for o in run.ops[stale + 1:] if o.process == inv.process)
    assert (inv.f, inv.key, inv.type) == ("read", 0, "invoke")
    # the value read is the first ok write of key 0, overwritten long before
    first_write = next(o for o in run.ops if o.type == "ok" and o.f in ("write", "cas") and o.key == 0)
    assert comp.value in (first_write.value, first_write.value[1] if isinstance(first_write.value, list) else None)
    assert w.related, "the partial linearization's steps are the related ops"
    assert all(run.ops[i].type == "invoke" for i in w.related)
    assert "read" in w.explanation and "but the value is" in w.explanation


def test_graph_witness_lists_every_op_of_the_cycle(graph_run):
    run = load_run(graph_run)
    ws = find_witnesses(run.results)
    g1c = [w for w in ws if w.title == "G1c"]
    assert g1c and g1c[0].kind == "graph"
    rec = g1c[0].record
    assert set(g1c[0].blocked) == {s["from"] for s in rec["steps"]}
    assert all(s["why"] for s in rec["steps"])


def test_a_valid_run_has_no_witness(valid_run):
    assert find_witnesses(load_run(valid_run).results) == []


# -- the page ----------------------------------------------------------------------------


def test_report_is_self_contained_and_marks_the_anomaly(invalid_run):
    files = write_run_report(invalid_run)
    page = files.report.read_text()
    assert files.problems == [] and len(files.plots) == 3
    for tag, attrs in _tags(page):
        assert not (tag == "script" and attrs.get("src")), "no external script"
        assert tag != "link", "no external stylesheet"
        for k in ("src", "href"):
            v = attrs.get(k) or ""
            assert not v.startswith(("http:", "https:", "//")), f"{tag} {k}={v} needs the network"
    assert "@import" not in page and "url(http" not in page
    data = _data(page)
    run = load_run(invalid_run)
    w = find_witnesses(run.results)[0]
    assert len(data["ops"]) == len(op_pairs(run.ops))
    assert w.blocked[0] in data["blocked"]
    assert set(w.related) - set(data["blocked"]) <= set(data["related"])
    assert {f["kind"] for f in data["faults"]} == {"kill", "pause"}
    # the explanation: the reason, and each step of the partial linearization as a link to its op
    assert w.explanation in page
    links = {int(a["data-op"]) for t, a in _tags(page) if t == "a" and a.get("data-op")}
    assert w.blocked[0] in links and set(w.related) <= links
    assert "model state before" in page
    # plots are inlined
    assert page.count('src="data:image/png;base64,') == 3
    assert (invalid_run / "plots" / "latency-raw.png").exists()


def test_report_of_a_graph_anomaly_draws_the_cycle_with_each_edge_explained(graph_run):
    page = write_run_report(graph_run, plots=False).report.read_text()
    run = load_run(graph_run)
    rec = next(w for w in find_witnesses(run.results) if w.title == "G1c").record
    section = page[page.index('id="anomaly"'):page.index('id="timeline"')]
    assert '<g class="cycle">' in section
    for s in rec["steps"]:
        assert s["why"].replace("'", "&#x27;") in section
    data = _data(page)
    inv_of_completion = {o[11]: o[0] for o in data["ops"]}
    assert {inv_of_completion[i] for i in rec["ops"]} <= set(data["blocked"])


def test_report_of_a_valid_run_says_there_is_no_anomaly(valid_run):
    page = render_report(load_run(valid_run))
    assert 'id="no-anomaly"' in page
    assert _data(page)["blocked"] == [] and "verdict-valid" in page


def test_values_cannot_close_the_script_tag(tmp_path, invalid_run):
    run = load_run(invalid_run)
    evil = "</script><script>alert(1)</script>"
    run.ops[0] = Op(0, run.ops[0].time, run.ops[0].process, "invoke", run.ops[0].f, run.ops[0].key, evil)
    page = render_report(run)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert any(o[4] == evil for o in _data(page)["ops"])


def test_large_history_is_windowed_around_the_anomaly_with_a_note(store):
    run = load_run(write_sample_run(store, "large-invalid-register", seed=5, rounds=600))
    total = len(op_pairs(run.ops))
    page = render_report(run, max_ops=300)
    data = _data(page)
    assert len(data["ops"]) == 300 < total
    assert 'id="window-note"' in page and f"{total:,} client ops" in page and "around the anomaly" in page
    shown = {o[0] for o in data["ops"]}
    assert data["blocked"][0] in shown
    # the stale read sits two thirds into the history: the window is not simply the first ops
    assert data["ops"][0][0] > 0


def test_size_cap_shrinks_the_window_until_the_page_fits(store):
    run = load_run(write_sample_run(store, "large-invalid-register", seed=6, rounds=600))
    full = render_report(run)
    assert 'id="window-note"' not in full
    cap = len(full.encode()) // 2
    page = render_report(run, max_bytes=cap)
    assert len(page.encode()) <= cap
    assert 'id="window-note"' in page
    assert _data(page)["blocked"][0] in {o[0] for o in _data(page)["ops"]}


def test_history_without_anomaly_is_windowed_from_the_start(valid_run):
    run = load_run(valid_run)
    data = build_timeline_data(run, [], max_ops=20)
    assert [o[0] for o in data["ops"]] == [p.inv.index for p in op_pairs(run.ops)[:20]]
    assert "the first ones" in data["window"]["note"]


def test_torn_history_and_missing_results_still_give_a_report(tmp_path, invalid_run):
    d = tmp_path / "run"
    d.mkdir()
    (d / "test.json").write_text((invalid_run / "test.json").read_text())
    lines = (invalid_run / "history.jsonl").read_text().splitlines()
    (d / "history.jsonl").write_text("\n".join(lines[:50]) + "\n" + lines[50][:20])
    files = write_run_report(d, plots=False)
    page = files.report.read_text()
    assert "results.json is missing" in page
    assert "history.jsonl:51" in page
    assert "UNKNOWN" in page
    assert len(_data(page)["ops"]) > 0


def test_missing_matplotlib_costs_the_plots_not_the_report(monkeypatch, valid_run):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *a, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    files = write_run_report(valid_run)
    assert files.plots == [] and "matplotlib" in files.problems[0]
    assert "matplotlib" in files.report.read_text()


def test_faults_that_start_and_end_together_are_one_band():
    from jepsenlike.report.model import merge_same_span

    ops = [
        _op(0, 10, "nemesis", "invoke", "pause", "minority"),
        _op(1, 11, "nemesis", "info", "pause", {"nodes": ["n3", "n4"]}),
        _op(2, 20, "nemesis", "invoke", "resume", None),
        _op(3, 21, "nemesis", "info", "resume", {"nodes": ["n4", "n3"]}),
    ]
    faults, _ = fault_intervals(ops)
    assert len(faults) == 2
    (merged,) = merge_same_span(faults)
    assert (merged.nodes, merged.label, merged.start_ns, merged.end_ns) == (["n3", "n4"], "pause n3,n4", 11, 21)


def test_header_links_the_raw_files_relatively(invalid_run):
    (invalid_run / "nodes").mkdir(exist_ok=True)
    (invalid_run / "nodes" / "n1.log").write_text("started\n")
    page = render_report(load_run(invalid_run))
    hrefs = {a.get("href") for t, a in _tags(page) if t == "a" and a.get("href")}
    assert {"history.jsonl", "results.json", "test.json", "nemesis.log", "nodes/n1.log"} <= hrefs


def test_packed_lanes_never_hold_two_processes_at_once(store):
    from jepsenlike.report.html import pack_lanes

    run = load_run(write_sample_run(store, "large-invalid-register", seed=4, rounds=300))
    pairs = op_pairs(run.ops)
    lanes = pack_lanes(pairs, run.end_ns)
    assert len(set(lanes.values())) < len(lanes), "retired processes share lanes"
    by_lane: dict[int, list[tuple[int, int]]] = {}
    for p in pairs:
        end = p.comp.time if p.comp else run.end_ns
        by_lane.setdefault(lanes[p.inv.process], []).append((p.inv.time, end))
    for spans in by_lane.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_steps_are_numbered_from_the_linearization_length_when_the_checker_kept_only_the_last(invalid_run):
    run = load_run(invalid_run)
    fail = run.results["workload"]["failures"][0]
    pl = fail["partial_linearizations"][0]
    pl["length"] = len(pl["steps"]) + 1000  # as if the checker had kept only the last steps
    page = render_report(run)
    assert f"... {pl['length'] - len(pl['steps'][-60:])} earlier step(s) not shown" in page
    assert f"<tr><td>{pl['length']}</td>" in page


def test_a_crashed_run_shows_the_crash_and_its_traceback(tmp_path, valid_run):
    d = tmp_path / "crashed"
    d.mkdir()
    for name in ("test.json", "history.jsonl"):
        (d / name).write_text((valid_run / name).read_text())
    (d / "results.json").write_text(json.dumps({
        "valid": "unknown", "crashed": "NodeStartError: n2 did not answer",
        "traceback": "Traceback (most recent call last):\n  File \"runner.py\"\nNodeStartError: n2",
        "explanation": "the run did not complete; nothing was checked"}))
    page = render_report(load_run(d))
    assert "The run crashed: NodeStartError: n2 did not answer" in page
    assert "<summary>traceback</summary>" in page and "verdict-unknown" in page


def test_an_invalid_verdict_without_drawable_witness_shows_the_checker_details(tmp_path, valid_run):
    d = tmp_path / "set-run"
    d.mkdir()
    for name in ("test.json", "history.jsonl"):
        (d / name).write_text((valid_run / name).read_text())
    (d / "results.json").write_text(json.dumps({
        "valid": False, "explanation": "set anomalies: lost 1",
        "workload": {"name": "set", "valid": False, "lost": {"0": [17]}}}))
    page = render_report(load_run(d))
    assert "names no ops this page can highlight" in page and "&quot;lost&quot;" in page
    assert "No anomaly" not in page
