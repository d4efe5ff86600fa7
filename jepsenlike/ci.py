"""CI outputs of a suite of runs: JUnit XML, a Markdown summary, the pass policy.

Theory of operation
-------------------
A suite is the runs of one ``jepsenlike run --test-count N`` (or any list of
run directories). Each run becomes a :class:`RunRecord`, read back from its
run directory (``test.json`` + ``results.json``) so that the CI outputs say
exactly what the store says; a run that crashed before it had a usable run
directory is recorded with :meth:`RunRecord.crashed`.

* :func:`write_junit_xml`: one ``<testcase>`` per run. An invalid run has a
  ``<failure type="invalid">`` whose message is the verdict and the first line
  of the explanation, and whose text is the whole explanation, the report
  path and the reproduce command; an unknown run has ``<error
  type="unknown">``, a crashed run ``<error type="crashed">``. Properties on
  each testcase: seed, run_dir, verdict, system, workload, nemesis, report,
  reproduce. Characters XML 1.0 forbids are dropped, so any history value
  quoted in an explanation keeps the file well formed.
* :func:`write_summary_md`: a Markdown table (one row per run) and, for each
  run that is not valid, a collapsible block with the explanation, report
  and reproduce command. Written for a GitHub job summary: when the target is
  ``$GITHUB_STEP_SUMMARY`` the text is appended (other steps write there too);
  any other file is replaced.
* :class:`PassPolicy`: how many of the runs must be valid for the suite to
  pass: ``all`` (the default: every run), ``any`` (at least one), ``N`` (at
  least N runs), ``P%`` (at least P percent of the runs, rounded up). When the
  policy holds the exit code is 0; otherwise it is the usual merge of the
  runs that were not valid: 1 if any was invalid, else 255 if any crashed,
  else 2. A loose policy is for suites with known flaky *unknown* verdicts or
  crashes; every invalid run still shows as a failed testcase and in the
  summary.

:func:`finish_suite` does all three in one call; it is what ``jepsenlike run``
calls after its last run.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jepsenlike.errors import ConfigError

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 255
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MAX_MD_EXPLANATION_LINES = 60


@dataclass
class RunRecord:
    """One run of a suite, as the CI outputs report it.

    ``outcome`` is ``valid``, ``invalid``, ``unknown`` or ``crashed``.
    """

    name: str
    valid: Any
    seed: Any = None
    run_dir: Path | None = None
    explanation: str = ""
    system: str = ""
    workload: str = ""
    nemesis: list[str] = field(default_factory=list)
    duration_s: float | None = None
    started_at: str = ""
    reproduce: str = ""
    report: Path | None = None
    crash: str | None = None
    totals: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    anomaly: str = ""

    @property
    def outcome(self) -> str:
        if self.crash is not None:
            return "crashed"
        if self.valid is True:
            return "valid"
        if self.valid is False:
            return "invalid"
        return "unknown"

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> RunRecord:
        """Read a run directory; a run whose results say it crashed is ``crashed``."""
        from jepsenlike.report.model import REPORT_FILE, find_witnesses, fired_faults, load_run

        run = load_run(run_dir)
        cfg = run.config
        res = run.results
        phases = run.test.get("phases") or {}
        duration = phases.get("end") / 1e9 if isinstance(phases.get("end"), int) else (
            run.end_ns / 1e9 if run.ops else None)
        crash = res.get("crashed")
        if not res:
            crash = "; ".join(run.notes) or "no results.json"
        witnesses = find_witnesses(res, limit=1)
        report = run.run_dir / REPORT_FILE
        return cls(
            name=run.name,
            valid=res.get("valid", "unknown"),
            seed=run.seed,
            run_dir=run.run_dir,
            explanation=str(res.get("explanation") or ""),
            system=str(cfg.get("system", "")),
            workload=str(cfg.get("workload", "")),
            nemesis=list(cfg.get("nemesis") or []),
            duration_s=duration,
            started_at=str(run.test.get("started_at", "")),
            reproduce=str(res.get("reproduce") or run.test.get("reproduce") or ""),
            report=report if report.exists() else None,
            crash=str(crash) if crash else None,
            totals=dict((res.get("stats") or {}).get("totals") or {}),
            faults=fired_faults(res),
            anomaly=witnesses[0].title if witnesses else "",
        )

    @classmethod
    def crashed(cls, name: str, seed: Any, message: str, run_dir: str | Path | None = None) -> RunRecord:
        """A run that did not produce a verdict (the harness or the cluster failed)."""
        return cls(name=name, valid="unknown", seed=seed, run_dir=Path(run_dir) if run_dir else None,
                   explanation=message, crash=message)

    @property
    def headline(self) -> str:
        """The verdict and the explanation's first line."""
        first = next((ln.strip() for ln in self.explanation.splitlines() if ln.strip()), "")
        word = self.outcome.upper()
        return f"{word}: {first}" if first else word


# -- pass policy ----------------------------------------------------------------


@dataclass(frozen=True)
class PolicyOutcome:
    """Whether a suite passed its policy, and the exit code that says so."""

    passed: bool
    valid: int
    total: int
    required: int
    exit_code: int
    message: str


@dataclass(frozen=True)
class PassPolicy:
    """How many valid runs a suite needs: ``all``, ``any``, ``N`` or ``P%``."""

    kind: str
    amount: float = 0.0
    text: str = "all"

    @classmethod
    def parse(cls, text: str | None) -> PassPolicy:
        """Parse ``--pass-policy``.

        Raises:
            ConfigError: not one of the forms, naming them.
        """
        t = (text or "all").strip().lower()
        if t in ("all", "any"):
            return cls(t, 0.0, t)
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", t)
        if m:
            p = float(m.group(1))
            if not 0 < p <= 100:
                raise ConfigError(f"--pass-policy {text!r}: a percentage must be in (0, 100]")
            return cls("percent", p, t)
        if re.fullmatch(r"\d+", t):
            n = int(t)
            if n < 1:
                raise ConfigError(f"--pass-policy {text!r}: a count must be at least 1")
            return cls("count", n, t)
        raise ConfigError(
            f"--pass-policy {text!r} is not a policy; use all, any, N (at least N valid runs) "
            "or P% (at least P percent of the runs valid)"
        )

    def validate_for(self, test_count: int) -> None:
        """Refuse a count policy that can never pass.

        Raises:
            ConfigError: ``N`` is larger than the number of runs.
        """
        if self.kind == "count" and self.amount > test_count:
            raise ConfigError(f"--pass-policy {self.text}: needs {int(self.amount)} valid runs but "
                              f"--test-count is {test_count}")

    def required(self, total: int) -> int:
        """Valid runs needed out of ``total``."""
        if self.kind == "all":
            return total
        if self.kind == "any":
            return min(1, total)
        if self.kind == "count":
            return int(self.amount)
        return math.ceil(total * self.amount / 100 - 1e-9)

    def evaluate(self, records: list[RunRecord]) -> PolicyOutcome:
        total = len(records)
        outcomes = [r.outcome for r in records]
        valid = outcomes.count("valid")
        need = self.required(total)
        passed = total > 0 and valid >= need
        if passed:
            code = EXIT_VALID
        elif "invalid" in outcomes:
            code = EXIT_INVALID
        elif "crashed" in outcomes or total == 0:
            code = EXIT_ERROR
        else:
            code = EXIT_UNKNOWN
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("valid", "invalid", "unknown", "crashed")
                           if outcomes.count(o))
        message = (f"pass policy {self.text}: {valid} of {total} run(s) valid, {need} required: "
                   f"{'PASSED' if passed else 'FAILED'} ({counts or 'no runs'})")
        return PolicyOutcome(passed, valid, total, need, code, message)


# -- JUnit XML ----------------------------------------------------------------------


def _x(text: Any) -> str:
    return _XML_BAD.sub("", str(text))


def junit_xml(records: list[RunRecord], *, suite: str = "jepsenlike",
              policy: PassPolicy | None = None) -> ET.ElementTree:
    """The JUnit XML tree of a suite (see the module docstring)."""
    failures = sum(r.outcome == "invalid" for r in records)
    errors = sum(r.outcome in ("unknown", "crashed") for r in records)
    total_time = sum(r.duration_s or 0.0 for r in records)
    root = ET.Element("testsuites", name=_x(suite), tests=str(len(records)), failures=str(failures),
                      errors=str(errors), time=f"{total_time:.3f}")
    ts = ET.SubElement(root, "testsuite", name=_x(suite), tests=str(len(records)), failures=str(failures),
                       errors=str(errors), skipped="0", time=f"{total_time:.3f}",
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"), hostname=_x(socket.gethostname()))
    if policy is not None:
        out = policy.evaluate(records)
        props = ET.SubElement(ts, "properties")
        ET.SubElement(props, "property", name="pass_policy", value=_x(policy.text))
        ET.SubElement(props, "property", name="pass_policy_result", value=_x(out.message))
    for i, r in enumerate(records, start=1):
        tc = ET.SubElement(ts, "testcase", classname=_x(f"jepsenlike.{r.name}"),
                           name=_x(f"{r.name} run {i} (seed {r.seed})"), time=f"{r.duration_s or 0.0:.3f}")
        props = ET.SubElement(tc, "properties")
        for k, v in (("seed", r.seed), ("run_dir", r.run_dir), ("verdict", r.outcome), ("system", r.system),
                     ("workload", r.workload), ("nemesis", ",".join(r.nemesis)), ("report", r.report),
                     ("reproduce", r.reproduce)):
            if v not in (None, ""):
                ET.SubElement(props, "property", name=k, value=_x(v))
        body = r.explanation.strip()
        if r.report:
            body += f"\n\nReport: {r.report}"
        if r.run_dir:
            body += f"\nRun dir: {r.run_dir}"
        if r.reproduce:
            body += f"\nReproduce: {r.reproduce}"
        if r.outcome == "invalid":
            el = ET.SubElement(tc, "failure", message=_x(r.headline), type="invalid")
            el.text = _x(body.strip())
        elif r.outcome in ("unknown", "crashed"):
            el = ET.SubElement(tc, "error", message=_x(r.headline), type=r.outcome)
            el.text = _x(body.strip())
        out_el = ET.SubElement(tc, "system-out")
        out_el.text = _x(body.strip() or r.headline)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit_xml(path: str | Path, records: list[RunRecord], *, suite: str = "jepsenlike",
                    policy: PassPolicy | None = None) -> Path:
    """Write the JUnit XML file (parent directories created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(records, suite=suite, policy=policy).write(p, encoding="utf-8", xml_declaration=True)
    return p


# -- Markdown -------------------------------------------------------------------------

ICONS = {"valid": "✅", "invalid": "❌", "unknown": "⚠️", "crashed": "💥"}


def _cell(text: Any, limit: int = 120) -> str:
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("|", "\\|")


def summary_markdown(records: list[RunRecord], *, policy: PassPolicy | None = None,
                     title: str = "jepsenlike") -> str:
    """The Markdown summary of a suite."""
    policy = policy or PassPolicy.parse("all")
    out = policy.evaluate(records)
    lines = [f"## {ICONS['valid'] if out.passed else ICONS['invalid']} {title}: "
             f"{'passed' if out.passed else 'FAILED'}", "", out.message, ""]
    if records:
        lines += ["| # | test | seed | verdict | ops ok/fail/info | faults | anomaly | run dir |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(records, start=1):
            t = r.totals
            ops = f"{t.get('ok', 0)}/{t.get('fail', 0)}/{t.get('info', 0)}" if t else ""
            faults = ", ".join(f"{f}×{n}" for f, n in r.faults.items()) or "none"
            anomaly = r.anomaly or (r.headline if r.outcome != "valid" else "")
            lines.append(f"| {i} | {_cell(r.name)} | {_cell(r.seed)} | {ICONS[r.outcome]} {r.outcome} | {ops} | "
                         f"{_cell(faults)} | {_cell(anomaly)} | {f'`{r.run_dir}`' if r.run_dir else ''} |")
        lines.append("")
    for i, r in enumerate(records, start=1):
        if r.outcome == "valid":
            continue
        expl = r.explanation.strip().splitlines()
        shown = expl[:MAX_MD_EXPLANATION_LINES]
        lines += ["<details>", f"<summary>run {i} (seed {r.seed}): {_cell(r.headline, 200)}</summary>", "",
                  "```text", *[ln.replace("```", "'''") for ln in shown]]
        if len(expl) > len(shown):
            lines.append(f"... {len(expl) - len(shown)} more line(s) in results.json")
        lines += ["```", ""]
        if r.report:
            lines.append(f"Report: `{r.report}`  ")
        if r.run_dir:
            lines.append(f"Run dir: `{r.run_dir}`  ")
        if r.reproduce:
            lines.append(f"Reproduce: `{r.reproduce}`")
        lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def write_summary_md(path: str | Path, records: list[RunRecord], *, policy: PassPolicy | None = None,
                     append: bool | None = None) -> Path:
    """Write (or, for ``$GITHUB_STEP_SUMMARY`` or ``append=True``, append) the summary."""
    p = Path(path)
    if append is None:
        gh = os.environ.get("GITHUB_STEP_SUMMARY")
        append = bool(gh) and Path(gh).resolve() == p.resolve()
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(records, policy=policy))
    return p


def finish_suite(
    records: list[RunRecord],
    *,
    pass_policy: str | PassPolicy | None = "all",
    junit_xml_path: str | Path | None = None,
    summary_md_path: str | Path | None = None,
) -> PolicyOutcome:
    """Evaluate the policy and write whichever CI files were asked for."""
    policy = pass_policy if isinstance(pass_policy, PassPolicy) else PassPolicy.parse(pass_policy)
    if junit_xml_path:
        write_junit_xml(junit_xml_path, records, policy=policy)
    if summary_md_path:
        write_summary_md(summary_md_path, records, policy=policy)
    return policy.evaluate(records)
