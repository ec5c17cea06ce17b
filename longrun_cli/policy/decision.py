"""The decision after each attempt: success, retry after a delay, permanent or exhausted."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.tracker import Budgets

if TYPE_CHECKING:
    from longrun_cli.policy.outcome import Outcome
    from longrun_cli.policy.rule import RetryRule


class Verdict(Enum):
    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"
    EXHAUSTED = "exhausted"


class Decision(NamedTuple):
    """``rule`` is the index of the matching rule; ``attempt`` is 0-based within its streak."""

    verdict: Verdict
    rule: int | None = None
    attempt: int = 0
    delay: int = 0


class _RetryPolicyFields(NamedTuple):
    rules: tuple[RetryRule, ...]
    success_codes: frozenset[int]
    jitter: float


class RetryPolicy(_RetryPolicyFields):
    """Rules in checking order (SPEC §3), extra success codes and the jitter ratio.

    Immutable and validated when built; a NamedTuple because start-up builds one
    every time (see TaskSpec).
    """

    __slots__ = ()

    def __new__(
        cls,
        rules: tuple[RetryRule, ...] = (),
        success_codes: frozenset[int] = frozenset(),
        jitter: float = 0.0,
    ) -> RetryPolicy:
        if not 0.0 <= jitter <= 1.0:
            raise SpecError(f"invalid jitter {jitter!r}: must be between 0 and 1")
        return super().__new__(cls, rules, success_codes, jitter)

    @classmethod
    def build(
        cls,
        rules: list[RetryRule],
        success_codes: frozenset[int] = frozenset(),
        jitter: float = 0.0,
    ) -> RetryPolicy:
        """Order rules timeout → unhealthy → signal → stderr → exit code, keeping each's order."""
        ordered = sorted(rules, key=lambda rule: rule.matcher.kind)
        return cls(tuple(ordered), success_codes, jitter)

    @property
    def stderr_patterns(self) -> tuple[str, ...]:
        """Distinct stderr regexes the process layer must watch for."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            if rule.matcher.stderr is not None:
                seen[rule.matcher.stderr] = None
        return tuple(seen)

    def doubts(self) -> list[str]:
        """Rules that can never fire: their codes are successes, or an earlier rule is the same."""
        found: list[str] = []
        for index, rule in enumerate(self.rules):
            codes = rule.matcher.exit_codes
            if codes and codes <= self.success_codes and rule.matcher.stderr is None:
                found.append(
                    f"rule {index + 1} ({rule.matcher.describe()}) can never fire: "
                    "that exit code counts as success"
                )
            earlier = [
                i for i, other in enumerate(self.rules[:index]) if other.matcher == rule.matcher
            ]
            if earlier:
                found.append(
                    f"rule {index + 1} ({rule.matcher.describe()}) repeats rule {earlier[0] + 1}:"
                    " only the first is used"
                )
        return found

    def is_success(self, outcome: Outcome) -> bool:
        if outcome.timed_out or outcome.signal is not None or outcome.spawn_error:
            return False
        if outcome.unhealthy is not None:
            return False
        return outcome.exit_code == 0 or outcome.exit_code in self.success_codes

    def decide(
        self, budgets: Budgets, outcome: Outcome, uniform01: float = 0.0
    ) -> tuple[Decision, Budgets]:
        """Classify ``outcome``; ``uniform01`` is the random sample used for jitter."""
        if self.is_success(outcome):
            return Decision(Verdict.SUCCESS), budgets.reset()
        for index, rule in enumerate(self.rules):
            if not rule.matcher.matches(outcome):
                continue
            attempt, allowed, budgets = budgets.on_failure(index, rule.retries)
            if not allowed:
                return Decision(Verdict.EXHAUSTED, index, attempt), budgets
            delay = rule.backoff.delay(attempt)
            if self.jitter:
                from longrun_cli.policy.backoff import jittered

                delay = jittered(delay, self.jitter, uniform01)
            return Decision(Verdict.RETRY, index, attempt, delay), budgets
        return Decision(Verdict.PERMANENT), budgets
