"""The --retry-* value syntax of SPEC §2."""

from __future__ import annotations

import signal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.duration import MILLISECOND, SECOND
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.signals import parse_signal, parse_signal_list
from longrun_cli.policy.spec import (
    escape_field,
    format_budget,
    parse_backoff,
    parse_codes,
    parse_exit_code_rule,
    parse_retries,
    parse_signal_rule,
    parse_stderr_rule,
    parse_timeout_rule,
    split_fields,
)


@pytest.mark.parametrize(
    ("text", "codes"),
    [("75", {75}), ("75,111", {75, 111}), ("64-66", {64, 65, 66}), ("1,64-65", {1, 64, 65})],
)
def test_codes_accept_lists_and_ranges(text, codes):
    """CODES is a number, a list or a range, each 1..255."""
    assert parse_codes(text) == codes


@pytest.mark.parametrize("text", ["0", "256", "x", "", "5-3", "1,,2", "-5", "7.5"])
def test_bad_codes_are_rejected_naming_the_value(text):
    """Out-of-range, reversed or malformed codes name the bad input."""
    with pytest.raises(SpecError, match="invalid exit codes"):
        parse_codes(text)


@pytest.mark.parametrize(("text", "retries"), [("", 3), ("5", 5), ("inf", None), ("INF", None)])
def test_retries_default_to_three_and_accept_inf(text, retries):
    """RETRIES: empty → 3, inf → unlimited."""
    assert parse_retries(text) == retries


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5"])
def test_bad_retries_are_rejected(text):
    """0, negatives and non-integers are errors."""
    with pytest.raises(SpecError, match="invalid retries"):
        parse_retries(text)


@pytest.mark.parametrize(
    ("text", "backoff"),
    [
        ("", Backoff(SECOND, 30 * SECOND, 2.0)),
        ("2s", Backoff(2 * SECOND, 30 * SECOND, 2.0)),
        ("2s,60s,3", Backoff(2 * SECOND, 60 * SECOND, 3.0)),
        ("100ms,0", Backoff(100 * MILLISECOND, 0, 2.0)),
        ("1s,,1.5", Backoff(SECOND, 30 * SECOND, 1.5)),
    ],
)
def test_backoff_fields_and_defaults(text, backoff):
    """BACKOFF is INITIAL[,MAX[,MULTIPLIER]] with MAX 30s and MULTIPLIER 2 by default."""
    assert parse_backoff(text) == backoff


@pytest.mark.parametrize("text", ["0s", "1s,500ms", "1s,2s,0", "1s,2s,x", "1s,2s,3,4", "-1s"])
def test_bad_backoff_is_rejected(text):
    """Zero initial, MAX below INITIAL, bad multiplier or too many fields are errors."""
    with pytest.raises(SpecError, match="invalid backoff"):
        parse_backoff(text)


def test_exit_code_spec_makes_one_rule_per_code():
    """64-66:5:2s makes three rules, each with 5 retries and the same backoff."""
    rules = parse_exit_code_rule("64-66:5:2s")
    assert [sorted(r.matcher.exit_codes or ()) for r in rules] == [[64], [65], [66]]
    assert {r.retries for r in rules} == {5}


def test_design_example_rule():
    """75:5:2s,60s,3 is exit 75, 5 retries, backoff 2s capped at 60s, ×3."""
    (rule,) = parse_exit_code_rule("75:5:2s,60s,3")
    assert rule.retries == 5
    assert rule.backoff == Backoff(2 * SECOND, 60 * SECOND, 3.0)


def test_stderr_spec_unescapes_colons_inside_the_regex():
    """'host\\: refused:2' is the regex 'host: refused' with 2 retries."""
    rule = parse_stderr_rule(r"host\: refused:2")
    assert rule.matcher.stderr == "host: refused"
    assert rule.retries == 2


def test_split_keeps_other_escapes_for_the_regex():
    """Backslash pairs other than \\: are passed through to the regex untouched."""
    assert split_fields(r"a\d+\\:3", escapes=True) == [r"a\d+\\", "3"]


def test_stderr_regex_with_catastrophic_backtracking_is_accepted():
    """(a+)+$ compiles: RE2 matches it in linear time."""
    assert parse_stderr_rule("(a+)+$").matcher.stderr == "(a+)+$"


@pytest.mark.parametrize("text", ["(", r"(a)\1", "(?=x)y", ""])
def test_bad_or_unsupported_regex_is_rejected(text):
    """Invalid regexes and backreferences/lookaround are clear errors."""
    with pytest.raises(SpecError, match="--retry-stderr"):
        parse_stderr_rule(text)


def test_signal_spec_accepts_names_and_numbers():
    """KILL,SIGSEGV,15 → one rule each."""
    rules = parse_signal_rule("KILL,SIGSEGV,15:2")
    assert [sorted(r.matcher.signals or ()) for r in rules] == [
        [signal.SIGKILL],
        [signal.SIGSEGV],
        [signal.SIGTERM],
    ]


@pytest.mark.parametrize("text", ["NOPE", "0", "999", "", "KILL,"])
def test_bad_signals_are_rejected(text):
    """Unknown names and out-of-range numbers are errors."""
    with pytest.raises(SpecError, match="signal"):
        parse_signal_list(text)


def test_signal_names_are_case_insensitive():
    """term, SIGTERM and TERM are the same signal."""
    assert parse_signal("term") == parse_signal("SIGTERM") == signal.SIGTERM


@pytest.mark.parametrize(("text", "retries"), [("", 3), ("2", 2), (":1s", 3), ("inf:1s", None)])
def test_timeout_spec_has_optional_fields(text, retries):
    """--retry-timeout takes [RETRIES][:BACKOFF]."""
    assert parse_timeout_rule(text).retries == retries


def test_too_many_fields_is_an_error():
    """75:5:1s:extra has one field too many."""
    with pytest.raises(SpecError, match="too many"):
        parse_exit_code_rule("75:5:1s:extra")


PARSERS = [
    parse_codes,
    parse_retries,
    parse_backoff,
    parse_exit_code_rule,
    parse_stderr_rule,
    parse_signal_rule,
    parse_timeout_rule,
    parse_signal_list,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(text=st.text(max_size=40))
def test_every_parser_accepts_or_raises_spec_error(parser, text):
    """Random input never raises anything but SpecError."""
    try:
        parser(text)
    except SpecError as exc:
        assert str(exc)


SPEC_ALPHABET = st.sampled_from(list("0123456789:,-.smhinfKILTERM\\ax()+*$"))


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(text=st.text(alphabet=SPEC_ALPHABET, max_size=20))
def test_every_parser_handles_near_valid_input(parser, text):
    """Input built from the syntax's own characters parses or raises SpecError."""
    try:
        parser(text)
    except SpecError as exc:
        assert "\n" not in str(exc)


def test_regex_error_with_a_newline_stays_on_one_line():
    """RE2 echoes the pattern; a newline in it must not split the message (found by hypothesis)."""
    with pytest.raises(SpecError) as info:
        parse_stderr_rule(")\n")
    assert "\n" not in str(info.value)


@given(text=st.text(alphabet="ab:\\", max_size=16))
def test_escaped_field_splits_back_to_itself(text):
    """Any field the splitter produced (followed by more) is written so that it reads back the same."""
    fields = split_fields(text, escapes=True)
    assume(len(fields) >= 2)
    written = f"{escape_field(fields[0])}:5:1s"
    assert split_fields(written, escapes=True) == [fields[0], "5", "1s"]


@given(retries=st.none() | st.integers(1, 10**6), initial=st.integers(1, 10**12),
       cap=st.integers(0, 10**13), multiplier=st.floats(1e-3, 1e3))  # fmt: skip
def test_formatted_budget_parses_back(retries, initial, cap, multiplier):
    """format_budget is read back by the rule parsers as the same retries and backoff."""
    if 0 < cap < initial:
        cap = initial
    backoff = Backoff(initial, cap, multiplier)
    rule = parse_timeout_rule(format_budget(retries, backoff))
    assert (rule.retries, rule.backoff) == (retries, backoff)
