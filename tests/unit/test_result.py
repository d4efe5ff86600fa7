import pytest

from jepsenlike.checkers.result import UNKNOWN, Result, check_safe, compose, merge_valid


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], True),
        ([True, True], True),
        ([True, UNKNOWN], UNKNOWN),
        ([UNKNOWN, False, True], False),
        ([False, UNKNOWN], False),
    ],
)
def test_merge_priority_false_over_unknown_over_true(values, expected):
    assert merge_valid(values) == expected


def test_merge_rejects_non_verdicts():
    with pytest.raises(ValueError, match="not a verdict"):
        merge_valid([True, "yes"])


def test_crashing_checker_yields_unknown_with_traceback():
    def boom(history):
        raise RuntimeError("kaput")

    r = check_safe(boom, [])
    assert r.valid == UNKNOWN
    assert "kaput" in r.details["error"]
    assert "Traceback" in r.details["traceback"]


def test_compose_keeps_each_result_under_its_name():
    r = compose({"a": Result(True), "b": Result(False, explanation="lost write")})
    assert r.valid is False
    assert r.details["b"]["valid"] is False
    assert "b: lost write" in r.explanation
