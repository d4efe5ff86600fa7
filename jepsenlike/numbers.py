"""Numeric command-line values: finite, in range, or a one-line error naming the flag.

``jepsenlike run`` validates its numbers in :mod:`jepsenlike.config`; the other
subcommands parse with argparse (``type=float``/``int``, which accepts
``nan`` and ``inf``) and then call :func:`check_number` on what they got.
"""

from __future__ import annotations

import math

from jepsenlike.errors import ConfigError


def check_number(flag: str, value: float | None, *, minimum: float = 0.0, strict: bool = True,
                 maximum: float | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` is None or a finite number in range.

    Args:
        flag: the flag, for the message (``--timeout``).
        value: the parsed value (None: not given).
        minimum: the lower bound; ``strict`` makes it exclusive.
        maximum: the inclusive upper bound, if any.
    """
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag}: expected a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum) or (maximum is not None and value > maximum):
        rel = ">" if strict else ">="
        bound = f"{rel} {minimum:g}" + (f" and <= {maximum:g}" if maximum is not None else "")
        raise ConfigError(f"{flag}: must be {bound}, got {value!r}")
