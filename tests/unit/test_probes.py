"""The probe syntax of --ready and --health: any text is a probe or one clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.decision import RetryPolicy, Verdict
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.matcher import Matcher
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.probes import HealthCheck, parse_probe, probe_text
from longrun_cli.policy.spec import parse_exit_code_rule, parse_timeout_rule, parse_unhealthy_rule
from longrun_cli.policy.status import exit_status
from longrun_cli.policy.tracker import Budgets


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("http://127.0.0.1:8080/health", "http", "http://127.0.0.1:8080/health"),
        ("http:127.0.0.1:8080/health", "http", "http://127.0.0.1:8080/health"),
        ("https:example.com/", "http", "https://example.com/"),
        ("http:https://example.com/", "http", "https://example.com/"),
        ("tcp:localhost:5432", "tcp", "localhost:5432"),
        ("stdout:ready to accept", "stdout", "ready to accept"),
        ("output:a:b", "output", "a:b"),
        ("cmd:pg_isready -h db:5432", "command", "pg_isready -h db:5432"),
    ],
)
def test_probe_syntax(text, kind, value):
    probe = parse_probe(text, "--ready")
    assert probe.kind == kind
    assert getattr(probe, kind) == value
    assert parse_probe(probe_text(probe), "--ready") == probe


@pytest.mark.parametrize(
    "text", ["", "8080", "udp:1.2.3.4:5", "tcp:", "tcp:host", "tcp:host:0", "stdout:(", "http:"]
)
def test_bad_probes_name_the_option_and_value(text):
    with pytest.raises(SpecError) as info:
        parse_probe(text, "--health")
    message = str(info.value)
    assert message.startswith("--health")
    assert "\n" not in message


@given(st.text(max_size=40))
def test_any_text_is_a_probe_or_a_one_line_error(text):
    try:
        probe = parse_probe(text, "--ready")
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    assert parse_probe(probe_text(probe), "--ready") == probe


def test_health_settings_are_checked():
    probe = parse_probe("tcp:127.0.0.1:1", "--health")
    with pytest.raises(SpecError):
        HealthCheck(probe, failures=0)
    with pytest.raises(SpecError):
        HealthCheck(probe, interval=0)


def test_unhealthy_is_classified_after_timeout_and_before_exit_codes():
    """SPEC §10: timeout → unhealthy → signal → stderr → exit code; only its own rule."""
    policy = RetryPolicy.build(
        [*parse_exit_code_rule("143:5:1s"), parse_unhealthy_rule("2:1s"), parse_timeout_rule("1")]
    )
    assert [rule.matcher.kind.name for rule in policy.rules] == [
        "TIMEOUT",
        "UNHEALTHY",
        "EXIT_CODE",
    ]
    sick = Outcome(exit_code=143, unhealthy="GET / answered 503")
    decision, _ = policy.decide(Budgets.fresh(len(policy.rules)), sick)
    assert decision.verdict is Verdict.RETRY
    assert decision.rule == 1
    # Without an unhealthy rule, the exit-code rule does not take it: permanent.
    only_codes = RetryPolicy.build(parse_exit_code_rule("143:5:1s"))
    decision, _ = only_codes.decide(Budgets.fresh(1), sick)
    assert decision.verdict is Verdict.PERMANENT
    assert exit_status(sick) == 143
    assert exit_status(Outcome(exit_code=0, unhealthy="x")) == 1
    assert not Matcher(unhealthy=True).matches(Outcome(exit_code=1))
