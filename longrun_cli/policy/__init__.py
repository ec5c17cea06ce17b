"""The pure policy core: durations, backoff, matchers, rules, budgets and the decision.

No IO, no asyncio, no clock or randomness of its own: callers pass values in.
"""

from longrun_cli.policy.backoff import Backoff, backoff_delay, jittered
from longrun_cli.policy.decision import Decision, RetryPolicy, Verdict
from longrun_cli.policy.duration import format_duration, parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.matcher import Matcher, MatchKind
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.rule import RetryRule
from longrun_cli.policy.status import exit_status
from longrun_cli.policy.taskspec import TaskSpec
from longrun_cli.policy.tracker import Budgets

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
