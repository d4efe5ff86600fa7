"""The runner is a list of named phases over one ExitStack, with short functions."""

from __future__ import annotations

import ast
import inspect

from jepsenlike import runner


def test_the_phases_are_named_units_in_order():
    assert [name for name, _ in runner.PHASES] == ["setup", "warmup", "chaos", "heal", "recover", "final"]
    assert all(callable(f) and f.__doc__ for _, f in runner.PHASES)


def test_no_function_in_the_runner_is_longer_than_60_lines():
    tree = ast.parse(inspect.getsource(runner))
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > 60}
    assert long == {}


def test_check_run_lives_in_the_analysis_module():
    from jepsenlike import analysis

    assert not hasattr(runner, "_run_extra_checker")
    assert runner.check_run is analysis.check_run
    for mod in ("jepsenlike/commands/analyze.py", "jepsenlike/report/samples.py"):
        src = (inspect.getfile(runner).rsplit("jepsenlike/", 1)[0] + mod)
        text = open(src, encoding="utf-8").read()
        assert "from jepsenlike.analysis import check_run" in text and "jepsenlike.runner" not in text
