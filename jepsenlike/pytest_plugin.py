"""pytest plugin: chaos runs as ordinary test cases.

Theory of operation
-------------------
Installed through the ``pytest11`` entry point, so any project that has
jepsenlike installed gets the ``jepsenlike_run`` fixture::

    def test_raft_survives_kills(jepsenlike_run):
        result = jepsenlike_run(system="raft", nemesis=["kill"], time_limit=10)
        result.assert_valid()

The fixture is a function. Each call runs the harness as a subprocess
(``python -m jepsenlike run ...``) -- the same command a person would type,
so a test depends on the CLI's contract, not on the harness's internals, and
a crash of the harness or the cluster cannot take the pytest process with it.
Keyword arguments become flags: ``time_limit=10`` is ``--time-limit 10``, a
list is joined with commas, ``True`` is a bare flag, ``None``/``False`` are
left out, and a mapping repeats the flag once per item: plugin options are
``option={"crash-all.spare": 1}`` (``--option crash-all.spare=1``). The store is ``<tmp_path>/store`` unless ``--jepsenlike-store DIR``
(or the ``jepsenlike_store`` ini option) names one, which a CI job then keeps
as an artifact.

The call returns a :class:`JepsenlikeResult`: the verdict (``valid``: True,
False, ``"unknown"``, or None when no run finished), the exit code, the run
directory, the checker's explanation, the path of ``report.html`` (written
here if the harness did not), and the CLI's output. ``assert_valid()`` fails
the test with the verdict, the explanation, the report path and the
reproduce command; ``assert_invalid()`` is for tests that prove a seeded bug
is caught. The run directory and report are also attached to the test's
``user_properties`` (they appear in pytest's own JUnit XML), and a section at
the end of the session lists every run that was not valid with its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MAX_EXPLANATION_LINES = 40
_RUNS_KEY = pytest.StashKey[list]()


@dataclass
class JepsenlikeResult:
    """The outcome of one ``jepsenlike run`` started by the fixture."""

    valid: Any
    exit_code: int
    run_dir: Path | None
    explanation: str
    report: Path | None
    results: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    elapsed_s: float = 0.0
    run_dirs: list[Path] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.valid is True:
            return "VALID"
        if self.valid is False:
            return "INVALID"
        return "UNKNOWN" if self.run_dir is not None else "NO RUN"

    def describe(self) -> str:
        """The verdict, explanation, report and reproduce command, for a failure message."""
        lines = [f"jepsenlike run: {self.verdict} (exit {self.exit_code})"]
        expl = self.explanation.strip().splitlines()
        if expl:
            lines += ["  " + ln for ln in expl[:MAX_EXPLANATION_LINES]]
            if len(expl) > MAX_EXPLANATION_LINES:
                lines.append(f"  ... {len(expl) - MAX_EXPLANATION_LINES} more line(s) in results.json")
        if self.run_dir is None:
            err = self.stderr.strip().splitlines()
            lines += ["  " + ln for ln in err[-20:]]
        if self.report is not None:
            lines.append(f"report: {self.report}")
        if self.run_dir is not None:
            lines.append(f"run dir: {self.run_dir}")
        reproduce = self.results.get("reproduce")
        if reproduce:
            lines.append(f"reproduce: {reproduce}")
        else:
            lines.append("command: " + " ".join(self.command))
        return "\n".join(lines)

    def assert_valid(self) -> None:
        """Fail the test unless the run's verdict is valid."""
        __tracebackhide__ = True
        if self.valid is not True:
            pytest.fail(self.describe(), pytrace=False)

    def assert_invalid(self) -> None:
        """Fail the test unless the run was found invalid (a seeded bug was caught)."""
        __tracebackhide__ = True
        if self.valid is not False:
            pytest.fail("expected an INVALID verdict (the seeded bug should be caught), got:\n"
                        + self.describe(), pytrace=False)


def to_flags(options: dict[str, Any]) -> list[str]:
    """Keyword arguments as ``jepsenlike run`` flags (see the module docstring)."""
    out: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                out += [flag, f"{key}={str(item).lower() if isinstance(item, bool) else item}"]
        elif isinstance(value, list | tuple | set | frozenset):
            out += [flag, ",".join(str(v) for v in value) or "none"]
        else:
            out += [flag, str(value)]
    return out


def _latest(store: Path) -> Path | None:
    latest = store / "latest"
    return latest.resolve() if latest.exists() else None


def _run_dirs_from(stdout: str, store: Path, latest_before: Path | None) -> list[Path]:
    """The run directories the CLI printed; else the store's ``latest`` if this call moved it."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("Run dir:"):
            p = Path(line.split(":", 1)[1].strip())
            if p.is_dir():
                found.append(p)
    if found:
        return found
    latest = _latest(store)
    return [latest] if latest is not None and latest != latest_before else []


def _read_results(run_dir: Path) -> dict[str, Any]:
    try:
        with open(run_dir / "results.json", encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _merge(values: list[Any]) -> Any:
    if any(v is False for v in values):
        return False
    if not values or any(v is None for v in values):
        return None if not values else "unknown"
    return "unknown" if any(v is not True for v in values) else True


def run_jepsenlike(store: Path, timeout: float | None = None, env: dict[str, str] | None = None,
                   **options: Any) -> JepsenlikeResult:
    """Run ``jepsenlike run`` with ``options`` into ``store`` and read the outcome back.

    With ``test_count=N`` the verdict merges the runs (False > unknown > True)
    and ``run_dir``/``report``/``explanation`` are those of the first run that
    was not valid (else the last run); ``run_dirs`` has them all.
    """
    store.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-P", "-m", "jepsenlike", "run", *to_flags(options), "--store", str(store), "--quiet"]
    t0 = time.monotonic()
    latest_before = _latest(store)
    if timeout is None:
        limit = float(options.get("time_limit", 30)) * int(options.get("test_count", 1))
        timeout = 120 + 3 * limit
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the runner treats it like Ctrl-C, stops its nodes and keeps the history.
        timed_out = True
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    elapsed = time.monotonic() - t0
    run_dirs = _run_dirs_from(out, store, latest_before)
    all_results = [(d, _read_results(d)) for d in run_dirs]
    verdicts = [r.get("valid") if r else None for _, r in all_results]
    valid = _merge(verdicts)
    run_dir, results = next(((d, r) for d, r in all_results if r.get("valid") is not True),
                            all_results[-1] if all_results else (None, {}))
    report: Path | None = None
    if run_dir is not None and results:
        report = run_dir / "report.html"
        if not report.exists():
            from jepsenlike.report import write_run_report

            report = write_run_report(run_dir).report
    explanation = str(results.get("explanation") or "") if results else ""
    if proc.returncode == 255 and valid is True:
        valid = "unknown"  # every finished run was valid, but another one crashed
        explanation = "a run crashed (exit 255); see stderr\n" + err.strip()[-2000:]
    if timed_out:
        valid = "unknown" if valid is not False else valid
        explanation = f"the run did not finish within {timeout:g} s and was stopped\n" + explanation
    return JepsenlikeResult(valid, proc.returncode, run_dir, explanation, report, results, cmd,
                            out, err, elapsed, run_dirs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jepsenlike")
    group.addoption("--jepsenlike-store", metavar="DIR", default=None,
                    help="store for runs of the jepsenlike_run fixture (default: a tmp_path per test)")
    parser.addini("jepsenlike_store", "store for runs of the jepsenlike_run fixture", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUNS_KEY] = []


@pytest.fixture
def jepsenlike_run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., JepsenlikeResult]:
    """Run the harness: ``jepsenlike_run(system="raft", nemesis=["kill"], time_limit=10)``."""
    configured = request.config.getoption("--jepsenlike-store") or request.config.getini("jepsenlike_store")
    store = Path(configured).resolve() if configured else tmp_path / "store"

    def run(*, timeout: float | None = None, env: dict[str, str] | None = None, **options: Any) -> JepsenlikeResult:
        result = run_jepsenlike(store, timeout=timeout, env=env, **options)
        if result.run_dir is not None:
            request.node.user_properties.append(("jepsenlike_run_dir", str(result.run_dir)))
        if result.report is not None:
            request.node.user_properties.append(("jepsenlike_report", str(result.report)))
        request.config.stash[_RUNS_KEY].append((request.node.nodeid, result))
        return result

    return run


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    runs = config.stash.get(_RUNS_KEY, [])
    bad = [(nodeid, r) for nodeid, r in runs if r.valid is not True]
    if not runs:
        return
    terminalreporter.section("jepsenlike runs")
    terminalreporter.write_line(f"{len(runs)} run(s), {len(runs) - len(bad)} valid")
    for nodeid, r in bad:
        where = r.report or r.run_dir or "no run directory"
        terminalreporter.write_line(f"{r.verdict}: {nodeid}: {where}")
