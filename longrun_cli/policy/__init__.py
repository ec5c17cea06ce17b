"""The pure policy core: durations, backoff, matchers, rules, budgets and the decision.

No IO, no asyncio, no clock or randomness of its own: callers pass values in.
Names are re-exported lazily so that importing one module does not load them all.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Backoff": "backoff",
    "backoff_delay": "backoff",
    "jittered": "backoff",
    "Decision": "decision",
    "RetryPolicy": "decision",
    "Verdict": "decision",
    "format_duration": "duration",
    "parse_duration": "duration",
    "SpecError": "errors",
    "Matcher": "matcher",
    "MatchKind": "matcher",
    "Outcome": "outcome",
    "RetryRule": "rule",
    "exit_status": "status",
    "TaskSpec": "taskspec",
    "Budgets": "tracker",
}

__all__ = [
    "Backoff",
    "Budgets",
    "Decision",
    "MatchKind",
    "Matcher",
    "Outcome",
    "RetryPolicy",
    "RetryRule",
    "SpecError",
    "TaskSpec",
    "Verdict",
    "backoff_delay",
    "exit_status",
    "format_duration",
    "jittered",
    "parse_duration",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
