"""Checkers: sequential specs, the linearizability search, graph checkers."""

from jepsenlike.checkers.result import UNKNOWN, Result, check_safe, compose, merge_valid

__all__ = ["UNKNOWN", "Result", "check_safe", "compose", "merge_valid"]
