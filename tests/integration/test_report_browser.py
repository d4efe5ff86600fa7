"""report.html in a real headless browser (Chromium driven by Selenium).

Needs ``chromium`` and ``chromium-driver`` (Debian) and ``selenium`` (PyPI);
skipped with the reason when any is missing. Screenshots go to
``$JEPSENLIKE_TEST_ARTIFACTS`` (a CI job uploads that directory) or, when it is
not set, to a pytest temporary directory; their paths are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.report import find_witnesses, load_run, write_run_report
from jepsenlike.report.samples import write_sample_run

pytestmark = pytest.mark.integration

selenium = pytest.importorskip("selenium", reason="pip install selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROME = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
if not (CHROME and DRIVER):
    pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("JEPSENLIKE_TEST_ARTIFACTS")
    d = Path(env) if env else tmp_path_factory.mktemp("artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    opts.binary_location = CHROME
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


def open_report(driver: Any, run_dir: Path, **kw: Any) -> dict[str, Any]:
    """Write the report, load it, and return its data; fails on any browser console error."""
    report = write_run_report(run_dir, **kw).report
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(report.as_uri())
    assert driver.execute_script("return document.body.getAttribute('data-ready')") == "1"
    return json.loads(driver.find_element(By.ID, "report-data").get_attribute("textContent"))


def assert_no_js_errors(driver: Any) -> None:
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], severe
    assert driver.execute_script("return window.__reportErrors") == []


def shot(driver: Any, artifacts: Path, name: str, element_id: str | None = None) -> Path:
    if element_id:
        driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", element_id)
    path = artifacts / f"{name}.png"
    assert driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def drawn(driver: Any, selector: str = "#timeline-svg rect.op") -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_timeline_shows_every_op_faults_and_the_anomaly(browser, store, artifacts):
    run_dir = write_sample_run(store, "invalid-register", seed=7)
    data = open_report(browser, run_dir)
    w = find_witnesses(load_run(run_dir).results)[0]
    assert len(drawn(browser)) == len(data["ops"]) > 100
    anomalous = drawn(browser, "#timeline-svg rect.op.anomaly")
    assert [int(r.get_attribute("data-index")) for r in anomalous] == [w.blocked[0]]
    assert len(drawn(browser, "#timeline-svg rect.op.related")) == len(set(w.related))
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline-svg .fault-label")]
    # a band says what the fault did, not only its f
    assert "n2 killed" in labels and any(label.startswith("n3 paused") for label in labels)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline-svg rect.fault")) == 2
    lanes = {t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline-svg .lane-label")}
    assert {"nemesis", "p0", "p1", "p2", "p3"} <= lanes
    assert browser.find_element(By.ID, "verdict").text == "INVALID"
    assert_no_js_errors(browser)
    shot(browser, artifacts, "report-invalid-timeline", "timeline")


def test_focus_tooltip_zoom_and_filters(browser, store, artifacts):
    run_dir = write_sample_run(store, "invalid-register", seed=8)
    data = open_report(browser, run_dir)
    total = len(data["ops"])
    full = browser.execute_script("return window.__report.view()")

    # "show on timeline": zoom to the anomaly and filter to its key
    browser.find_element(By.CSS_SELECTOR, "button.focus-witness").click()
    view = browser.execute_script("return window.__report.view()")
    assert view[1] - view[0] < (full[1] - full[0]) / 2
    blocked = data["witnesses"][0]["blocked"][0]
    flash = drawn(browser, "#timeline-svg rect.op.flash")
    assert [int(r.get_attribute("data-index")) for r in flash] == [blocked]
    key = browser.find_element(By.ID, "key-filter").get_attribute("value")
    assert key == data["witnesses"][0]["key"]
    by_index = {o[0]: o for o in data["ops"]}
    assert all(key in by_index[int(r.get_attribute("data-index"))][12] for r in drawn(browser))

    # hover: the tooltip has the op's details
    ActionChains(browser).move_to_element(flash[0]).perform()
    tip = browser.find_element(By.ID, "tooltip")
    assert tip.is_displayed()
    assert "anomaly op" in tip.text and "latency" in tip.text and f"{blocked}" in tip.text
    shot(browser, artifacts, "report-focused-anomaly", "timeline")

    # reset, then zoom in halves the span
    browser.find_element(By.ID, "zoom-reset").click()
    browser.find_element(By.CSS_SELECTOR, "#key-filter option[value='*']").click()
    assert len(drawn(browser)) == total
    browser.find_element(By.ID, "zoom-in").click()
    v = browser.execute_script("return window.__report.view()")
    assert abs((v[1] - v[0]) - (full[1] - full[0]) / 2) < 1e3
    browser.find_element(By.ID, "zoom-reset").click()

    # process filter: hide p0
    browser.find_element(By.CSS_SELECTOR, "#process-filter summary").click()
    browser.find_element(By.CSS_SELECTOR, "#process-list input[data-proc='0']").click()
    shown = drawn(browser)
    assert 0 < len(shown) < total
    assert all(by_index[int(r.get_attribute("data-index"))][1] != 0 for r in shown)
    assert "p0" not in {t.text for t in browser.find_elements(By.CSS_SELECTOR, "#timeline-svg .lane-label")}

    # anomaly ops only
    browser.find_element(By.ID, "proc-all").click()
    browser.find_element(By.ID, "anomaly-only").click()
    assert {int(r.get_attribute("data-index")) for r in drawn(browser)} <= set(data["blocked"]) | set(data["related"])
    assert_no_js_errors(browser)


def test_op_links_in_the_explanation_focus_the_timeline(browser, store):
    run_dir = write_sample_run(store, "invalid-register", seed=9)
    data = open_report(browser, run_dir)
    step = browser.find_element(By.CSS_SELECTOR, "table.steps a.op-link")
    index = int(step.get_attribute("data-op"))
    step.click()
    flash = drawn(browser, "#timeline-svg rect.op.flash")
    assert [int(r.get_attribute("data-index")) for r in flash] == [index]
    assert index in data["related"] or index in data["blocked"]
    assert_no_js_errors(browser)


def test_graph_anomaly_cycle_is_drawn(browser, store, artifacts):
    run_dir = write_sample_run(store, "graph-g1c", seed=3)
    data = open_report(browser, run_dir)
    rec = next(w for w in find_witnesses(load_run(run_dir).results) if w.title == "G1c").record
    panel = browser.find_element(By.CSS_SELECTOR, ".witness.graph")
    assert panel.find_element(By.TAG_NAME, "h3").text == "G1c"
    edges = panel.find_elements(By.CSS_SELECTOR, ".cycle-svg g.edge")
    assert len(edges) == len(rec["steps"])
    assert len(drawn(browser, "#timeline-svg rect.op.anomaly")) == len(data["blocked"]) > 0
    assert_no_js_errors(browser)
    shot(browser, artifacts, "report-graph-cycle", "anomaly")


def test_windowed_report_says_so(browser, store, artifacts):
    run_dir = write_sample_run(store, "large-invalid-register", seed=5, rounds=400)
    report = write_run_report(run_dir, plots=False).report
    from jepsenlike.report.html import render_report

    report.write_text(render_report(load_run(run_dir), max_ops=1200))
    browser.get_log("browser")
    browser.get(report.as_uri())
    note = browser.find_element(By.ID, "window-note")
    assert note.is_displayed() and "around the anomaly" in note.text
    assert len(drawn(browser)) == 1200
    assert len(drawn(browser, "#timeline-svg rect.op.anomaly")) == 1
    # many retired processes: lanes are packed, so the timeline stays as tall as the worker count
    data = json.loads(browser.find_element(By.ID, "report-data").get_attribute("textContent"))
    assert len(data["processes"]) > 24 and data["n_lanes"] <= 8
    assert browser.find_element(By.ID, "pack-lanes").is_selected()
    ys = {r.get_attribute("y") for r in drawn(browser)}
    assert len(ys) == data["n_lanes"]
    assert_no_js_errors(browser)
    shot(browser, artifacts, "report-windowed", "notes")


def test_report_of_a_real_run_with_a_seeded_bug(browser, tmp_path, artifacts):
    """A real ``jepsenlike run`` (in-process memory cluster, stale reads) seen in the browser."""
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "jepsenlike", "run", "--system", "memory", "--bug", "stale-read",
         "--time-limit", "4", "--warmup", "1", "--recovery", "0.5", "--seed", "2", "--nemesis", "kill",
         "--store", str(store), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = (store / "latest").resolve()
    data = open_report(browser, run_dir)
    assert len(drawn(browser)) == len(data["ops"])
    assert drawn(browser, "#timeline-svg rect.op.anomaly")
    assert browser.find_element(By.ID, "verdict").text == "INVALID"
    results = json.loads((run_dir / "results.json").read_text())
    assert 1 <= len(results["witness"]["ops"]) <= 10 and results["graph"]["valid"] is False
    assert_witness_on_first_screen(browser, results["witness"])
    assert_no_js_errors(browser)
    shot(browser, artifacts, "report-real-run-top")
    shot(browser, artifacts, "report-real-run-timeline", "timeline")


def assert_witness_on_first_screen(driver: Any, witness: dict[str, Any]) -> None:
    """The witness sentence and its picture (every op of it) are visible without scrolling."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return window.innerHeight")
    reason = driver.find_element(By.ID, "witness-reason")
    assert reason.is_displayed() and reason.text == witness["reason"]
    svg = driver.find_element(By.ID, "witness-svg")
    assert svg.is_displayed()
    bottom = driver.execute_script("return arguments[0].getBoundingClientRect().bottom", svg)
    assert bottom <= height, f"the witness picture ends at {bottom}px, below the first screen ({height}px)"
    bars = driver.find_elements(By.CSS_SELECTOR, "#witness-svg rect.witness-op")
    assert sorted(int(b.get_attribute("data-index")) for b in bars) == sorted(witness["ops"])
    faults = driver.find_element(By.ID, "witness-faults")
    assert faults.is_displayed() and faults.text
    top = driver.execute_script("return arguments[0].getBoundingClientRect().top", faults)
    assert top < height


def test_witness_is_the_first_screen(browser, store, artifacts):
    run_dir = write_sample_run(store, "invalid-register", seed=11)
    open_report(browser, run_dir, plots=False)
    results = json.loads((run_dir / "results.json").read_text())
    assert_witness_on_first_screen(browser, results["witness"])
    # the cycle is drawn right under it; the tables are folded
    assert browser.find_elements(By.CSS_SELECTOR, "#witness .witness-cycle g.edge")
    stats = browser.find_element(By.CSS_SELECTOR, "#stats-section details")
    assert stats.get_attribute("open") is None
    assert_no_js_errors(browser)
    shot(browser, artifacts, "report-witness-first-screen")


def test_check_report_of_a_jepsen_edn_history(browser, tmp_path, artifacts):
    """``jepsenlike check history.edn --model cas-register --report DIR`` in the browser: witness first."""
    out = tmp_path / "out"
    edn = Path(__file__).resolve().parents[1] / "corpus" / "jepsen" / "cas-register-stale-read.edn"
    proc = subprocess.run([sys.executable, "-m", "jepsenlike", "check", str(edn), "--model", "cas-register",
                           "--report", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    browser.get_log("browser")
    browser.get((out / "report.html").as_uri())
    assert browser.execute_script("return document.body.getAttribute('data-ready')") == "1"
    results = json.loads((out / "results.json").read_text())
    assert_witness_on_first_screen(browser, results["witness"])
    assert browser.find_element(By.ID, "verdict").text == "INVALID"
    assert "cas-register-stale-read.edn" in browser.find_element(By.ID, "summary").text
    assert_no_js_errors(browser)
    shot(browser, artifacts, "check-report-edn")


def test_serve_index_sorts_and_links_reports(browser, tmp_path, artifacts):
    """The run listing of ``jepsenlike serve`` in the browser: newest first, sortable, report link works."""
    import threading
    import time

    from jepsenlike.commands.serve import make_server

    store = tmp_path / "store"
    for kind in ("valid-register", "invalid-register", "graph-g1c"):
        write_sample_run(store, kind, seed=7)
        time.sleep(0.01)
    srv = make_server(store, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        browser.get_log("browser")
        browser.get(srv.url)

        def tests_column() -> list[str]:
            return [r.find_elements(By.TAG_NAME, "td")[1].text for r in browser.find_elements(By.CSS_SELECTOR, "tr.run")]

        assert tests_column() == ["sample-graph-g1c", "sample-invalid-register", "sample-valid-register"]
        browser.find_element(By.CSS_SELECTOR, "th[data-col='verdict']").click()
        verdicts = [r.find_elements(By.TAG_NAME, "td")[6].text for r in browser.find_elements(By.CSS_SELECTOR, "tr.run")]
        assert verdicts == sorted(verdicts)
        browser.find_element(By.CSS_SELECTOR, "th[data-col='time']").click()  # oldest first now
        assert tests_column() == ["sample-valid-register", "sample-invalid-register", "sample-graph-g1c"]
        assert_no_js_errors_page(browser)
        shot(browser, artifacts, "serve-index")
        browser.find_elements(By.CSS_SELECTOR, "a.report-link")[1].click()
        assert browser.execute_script("return document.body.getAttribute('data-ready')") == "1"
        assert browser.find_element(By.ID, "verdict").text == "INVALID"
        assert_no_js_errors(browser)
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def assert_no_js_errors_page(driver: Any) -> None:
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], severe
