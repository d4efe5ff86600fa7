"""Checker results and how they compose.

A checker is any callable ``check(history, test) -> Result``. ``valid`` is
``True``, ``False`` or ``"unknown"`` (the checker could not decide: budget spent,
or it crashed). Results of several checkers merge with the priority
``False > "unknown" > True``: one proven violation makes the whole run invalid,
and an undecided part keeps the rest from claiming validity.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Validity = bool | Literal["unknown"]
UNKNOWN: Literal["unknown"] = "unknown"


@dataclass
class Result:
    """The verdict of one checker.

    Attributes:
        valid: True, False or "unknown".
        details: checker-specific, JSON-serialisable data (the witness of a
            violation, the reason for "unknown", statistics).
        explanation: a few lines a person can read to see why.
    """

    valid: Validity
    details: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "explanation": self.explanation, **self.details}


def merge_valid(values: Iterable[Validity]) -> Validity:
    """Combine verdicts: any False wins, then any "unknown", else True."""
    seen_unknown = False
    for v in values:
        if v is False:
            return False
        if v == UNKNOWN:
            seen_unknown = True
        elif v is not True:
            raise ValueError(f"not a verdict: {v!r}; expected True, False or 'unknown'")
    return UNKNOWN if seen_unknown else True


def compose(results: dict[str, Result]) -> Result:
    """Merge named results into one, keeping each under its name."""
    return Result(
        valid=merge_valid(r.valid for r in results.values()),
        details={name: r.to_dict() for name, r in results.items()},
        explanation="\n".join(
            f"{name}: {r.explanation}" for name, r in results.items() if r.valid is not True
        ),
    )


def check_safe(check: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Run a checker; if it raises, answer "unknown" with the traceback saved."""
    try:
        return check(*args, **kwargs)
    except Exception as e:  # a crashing checker must never kill the run
        return Result(
            valid=UNKNOWN,
            details={"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()},
            explanation=f"checker crashed: {type(e).__name__}: {e}",
        )
