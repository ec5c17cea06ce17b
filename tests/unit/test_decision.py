"""Classification of an attempt and the retry decision (SPEC §3)."""

from __future__ import annotations

import signal

import pytest

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.decision import RetryPolicy, Verdict
from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.matcher import Matcher, MatchKind, format_codes
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.rule import RetryRule
from longrun_cli.policy.status import exit_status
from longrun_cli.policy.tracker import Budgets

EXIT_75 = RetryRule(Matcher(exit_codes=frozenset({75})), 2, Backoff(SECOND, 0, 2))
STDERR = RetryRule(Matcher(stderr="refused"), 5, Backoff(3 * SECOND, 0, 1))
KILL = RetryRule(Matcher(signals=frozenset({signal.SIGKILL})), 1)
TIMEOUT = RetryRule(Matcher(timeout=True), 1)


def policy(*rules: RetryRule) -> RetryPolicy:
    return RetryPolicy.build(list(rules))


def test_rules_are_ordered_timeout_signal_stderr_exit_code():
    """Rules are checked timeout → signal → stderr → exit code, whatever the input order."""
    ordered = policy(EXIT_75, STDERR, KILL, TIMEOUT).rules
    assert [r.matcher.kind for r in ordered] == [
        MatchKind.TIMEOUT,
        MatchKind.SIGNAL,
        MatchKind.STDERR,
        MatchKind.EXIT_CODE,
    ]


def test_exit_zero_is_success_and_resets_budgets():
    """Exit 0 is success and every rule's budget goes back to zero."""
    decision, budgets = policy(EXIT_75).decide(Budgets((2,)), Outcome(exit_code=0))
    assert decision.verdict is Verdict.SUCCESS
    assert budgets == Budgets((0,))


def test_first_matching_rule_wins():
    """Exit 75 with 'refused' on stderr is the stderr rule's (checked earlier)."""
    pol = policy(EXIT_75, STDERR)
    decision, _ = pol.decide(
        Budgets.fresh(2), Outcome(exit_code=75, stderr_hits=frozenset({"refused"}))
    )
    assert pol.rules[decision.rule or 0] is STDERR
    assert decision.delay == 3 * SECOND


def test_no_match_is_permanent():
    """A failure no rule matches is permanent."""
    decision, _ = policy(EXIT_75).decide(Budgets.fresh(1), Outcome(exit_code=1))
    assert decision.verdict is Verdict.PERMANENT


def test_budget_exhausts_after_retries():
    """retries=2: the third consecutive failure is exhausted."""
    pol, budgets = policy(EXIT_75), Budgets.fresh(1)
    verdicts = []
    for _ in range(3):
        decision, budgets = pol.decide(budgets, Outcome(exit_code=75))
        verdicts.append((decision.verdict, decision.delay))
    assert verdicts == [
        (Verdict.RETRY, SECOND),
        (Verdict.RETRY, 2 * SECOND),
        (Verdict.EXHAUSTED, 0),
    ]


def test_tracker_matches_go_rule_tracker():
    """OnFailure with max=3: attempts 0,1,2 allowed, the 4th refused."""
    budgets, seen = Budgets.fresh(1), []
    for _ in range(4):
        attempt, allowed, budgets = budgets.on_failure(0, 3)
        seen.append((attempt, allowed))
    assert seen == [(0, True), (1, True), (2, True), (3, False)]


def test_signal_rule_matches_only_external_signals():
    """KILL from elsewhere is transient; a timed-out attempt is not a signal failure."""
    pol = policy(KILL)
    assert pol.decide(Budgets.fresh(1), Outcome(signal=9))[0].verdict is Verdict.RETRY
    timed_out = Outcome(signal=9, timed_out=True)
    assert pol.decide(Budgets.fresh(1), timed_out)[0].verdict is Verdict.PERMANENT


def test_combined_rule_needs_both_conditions():
    """exit_codes and stderr in one rule must both match."""
    both = RetryRule(Matcher(exit_codes=frozenset({1}), stderr="busy"))
    pol = policy(both)
    assert pol.decide(Budgets.fresh(1), Outcome(exit_code=1))[0].verdict is Verdict.PERMANENT
    hit = Outcome(exit_code=1, stderr_hits=frozenset({"busy"}))
    assert pol.decide(Budgets.fresh(1), hit)[0].verdict is Verdict.RETRY


def test_spawn_errors_never_match_rules():
    """A command that could not start is permanent, even with a rule for its code."""
    pol = policy(RetryRule(Matcher(exit_codes=frozenset({127}))))
    outcome = Outcome(exit_code=127, spawn_error="command not found: x")
    assert pol.decide(Budgets.fresh(1), outcome)[0].verdict is Verdict.PERMANENT


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome(exit_code=3), 3),
        (Outcome(signal=9), 137),
        (Outcome(timed_out=True, exit_code=143), 124),
    ],
)
def test_exit_status_mapping(outcome, status):
    """Child's code, 128+N for a signal, 124 for a timeout."""
    assert exit_status(outcome) == status


def test_matcher_requires_a_condition():
    """A rule that matches nothing is a configuration error."""
    with pytest.raises(SpecError):
        Matcher()


def test_jitter_out_of_range_is_rejected():
    """--jitter must be within 0..1."""
    with pytest.raises(SpecError, match="jitter"):
        RetryPolicy(jitter=1.5)


def test_codes_are_described_compactly():
    """{64,65,66,75} prints as 64-66,75."""
    assert format_codes(frozenset({64, 65, 66, 75})) == "64-66,75"
