"""The seeded-bug table shared by the reference nodes.

Each protocol lists its bugs as data (:class:`Bug` rows in a :func:`bug_table`), so
that the CLI's error message, ``--help`` and the node's docs name the same bugs, and
parses ``--bug`` with :func:`parse_bugs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Bug", "bug_table", "parse_bugs", "validate_bugs"]


@dataclass(frozen=True)
class Bug:
    name: str
    layer: str  # where the rule is broken: core, storage or server
    what: str
    anomaly: str
    fault: str
    # The exact ``jepsenlike run`` arguments (besides --system and --bug) that
    # catch this bug, and those of its control run: the same load without the
    # fault the bug needs, which must stay valid. benchmarks/bench_detection.py
    # runs both; the README's seeded-bug table prints them. Empty: not yet known.
    catch: tuple[str, ...] = ()
    control: tuple[str, ...] = ()


def bug_table(*bugs: Bug) -> dict[str, Bug]:
    """The bugs by name, in the order given."""
    return {b.name: b for b in bugs}


def validate_bugs(
    names: Iterable[str],
    table: dict[str, Bug],
    *,
    label: str = "bug",
    error: type[ValueError] = ValueError,
) -> frozenset[str]:
    """Return ``names`` (blank ones dropped) as a set; raise ``error`` naming the valid ones."""
    out = frozenset(n.strip() for n in names if n and n.strip())
    unknown = sorted(out - table.keys())
    if unknown:
        raise error(
            f"unknown {label} {', '.join(repr(u) for u in unknown)}; valid bugs: {', '.join(table)}"
        )
    return out


def parse_bugs(
    spec: str | None,
    table: dict[str, Bug],
    *,
    label: str = "bug",
    error: type[ValueError] = ValueError,
) -> frozenset[str]:
    """Parse ``--bug`` (comma separated, may be empty or ``None``)."""
    return validate_bugs((spec or "").split(","), table, label=label, error=error)
