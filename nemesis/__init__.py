"""Fault plugins: the nemesis interface, targets, packages, and the built-in faults.

Built in: ``kill``, ``pause``, ``partition``, ``clock``, ``slow``, ``flaky``, and the
targeted ``leader-clock``, ``kill-elected``, ``flip-partition``, ``leader-pause``,
``kill-cluster``
(:mod:`jepsenlike.nemesis.targeted`).
Others arrive as ``jepsenlike.nemesis`` entry points (see
``docs/writing-a-nemesis.md`` and :mod:`jepsenlike.nemesis.package`).
"""

from jepsenlike.nemesis.core import (
    Composed,
    FaultOp,
    Nemesis,
    NemesisContext,
    NemesisContractError,
    Validate,
    compose,
    refusal,
)
from jepsenlike.nemesis.package import (
    NemesisPackage,
    PackageOptions,
    build_packages,
)
from jepsenlike.nemesis.registry import REGISTRY, nemesis_names
from jepsenlike.nemesis.schedule import (
    ScheduledFault,
    load_schedule,
    min_chaos_seconds,
    plan_schedule,
)
from jepsenlike.nemesis.targets import TARGET_SPECS, parse_target_spec, resolve_targets

__all__ = [
    "REGISTRY", "TARGET_SPECS", "Composed", "FaultOp", "Nemesis", "NemesisContext",
    "NemesisContractError", "NemesisPackage", "PackageOptions", "ScheduledFault", "Validate",
    "build_packages", "compose", "load_schedule", "min_chaos_seconds", "nemesis_names", "parse_target_spec",
    "plan_schedule", "refusal", "resolve_targets",
]
