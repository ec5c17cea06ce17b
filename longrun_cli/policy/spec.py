"""The value syntax of SPEC §2: ``CODES[:RETRIES[:BACKOFF]]`` and friends."""

from __future__ import annotations

import math

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.matcher import Matcher, compile_pattern
from longrun_cli.policy.rule import DEFAULT_RETRIES, RetryRule
from longrun_cli.policy.signals import parse_signal_list

DEFAULT_BACKOFF = Backoff()  # 1s, capped at 30s, doubling


def parse_codes(text: str) -> frozenset[int]:
    """``75``, ``75,111`` or ``64-78`` (mixable) → exit codes, each 1..255."""
    codes: set[int] = set()
    for part in text.split(","):
        item = part.strip()
        low_text, dash, high_text = item.partition("-")
        low = _code(low_text, text)
        high = _code(high_text, text) if dash else low
        if high < low:
            raise SpecError(f"invalid exit codes {quote(text)}: range {quote(item)} is reversed")
        codes.update(range(low, high + 1))
    return frozenset(codes)


def _code(item: str, whole: str) -> int:
    item = item.strip()
    if not item.isdigit() or not item.isascii():
        raise SpecError(f"invalid exit codes {quote(whole)}: {quote(item)} is not a number")
    if len(item.lstrip("0")) > 3:
        raise SpecError(f"invalid exit codes {quote(whole)}: {item[:20]}... is outside 1..255")
    code = int(item)
    if not 1 <= code <= 255:
        raise SpecError(f"invalid exit codes {quote(whole)}: {code} is outside 1..255")
    return code


# Beyond a billion consecutive retries a budget means "unlimited": say inf.
MAX_RETRIES = 1_000_000_000


def parse_retries(text: str) -> int | None:
    """``5`` → 5, ``inf`` → None (unlimited), empty → the default 3."""
    value = text.strip()
    if not value:
        return DEFAULT_RETRIES
    if value.lower() == "inf":
        return None
    if not value.isdigit() or not value.isascii():
        raise SpecError(f"invalid retries {quote(text)}: expected an integer >= 1 or inf")
    if len(value.lstrip("0")) > len(str(MAX_RETRIES)):
        raise SpecError(f"invalid retries {value[:20]}...: at most {MAX_RETRIES} (or inf)")
    retries = int(value)
    if retries > MAX_RETRIES:
        raise SpecError(f"invalid retries {quote(text)}: at most {MAX_RETRIES} (or inf)")
    if retries < 1:
        raise SpecError(f"invalid retries {quote(text)}: must be >= 1 (or inf)")
    return retries


def parse_backoff(text: str) -> Backoff:
    """``INITIAL[,MAX[,MULTIPLIER]]``; MAX defaults to 30s (0 = no cap), MULTIPLIER to 2."""
    if not text.strip():
        return DEFAULT_BACKOFF
    fields = text.split(",")
    if len(fields) > 3:
        raise SpecError(f"invalid backoff {quote(text)}: expected INITIAL[,MAX[,MULTIPLIER]]")
    try:
        initial = parse_duration(fields[0])
        cap = (
            parse_duration(fields[1])
            if len(fields) > 1 and fields[1].strip()
            else DEFAULT_BACKOFF.max_delay
        )
        multiplier = _multiplier(fields[2]) if len(fields) > 2 else 2.0
        return Backoff(initial, cap, multiplier)
    except SpecError as exc:
        raise SpecError(f"invalid backoff {quote(text)}: {exc}") from None


def _multiplier(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"multiplier {quote(text)} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise SpecError(f"multiplier {quote(text)} must be a finite number > 0")
    return value


def split_fields(text: str, *, escapes: bool = False) -> list[str]:
    """Split on ``:``; with ``escapes``, ``\\:`` is a literal colon and ``\\\\`` stays a pair."""
    if not escapes:
        return text.split(":")
    fields: list[str] = []
    current: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            follower = text[pos + 1]
            current.append(":" if follower == ":" else char + follower)
            pos += 2
            continue
        if char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        pos += 1
    fields.append("".join(current))
    return fields


def escape_field(text: str) -> str:
    """Write ``text`` so that ``split_fields(..., escapes=True)`` gives it back as one field.

    Pairs ``\\X`` are kept as the splitter reads them; a colon outside a pair gets
    a backslash. A ``\\:`` pair cannot be written (the splitter turns it into
    ``:``), which for a regex means the same; nor can a trailing lone backslash
    be followed by more fields (RE2 rejects such a regex anyway).
    """
    out: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(char + text[pos + 1])
            pos += 2
            continue
        out.append("\\:" if char == ":" else char)
        pos += 1
    return "".join(out)


def format_budget(retries: int | None, backoff: Backoff) -> str:
    """``RETRIES:BACKOFF`` exactly as the parsers read them back."""
    budget = "inf" if retries is None else str(retries)
    return f"{budget}:{backoff.describe()}"


def _budget_fields(
    option: str, spec: str, fields: list[str], hint: str = ""
) -> tuple[int | None, Backoff]:
    if len(fields) > 2:
        raise SpecError(f"invalid {option} {quote(spec)}: too many ':' fields{hint}")
    try:
        retries = parse_retries(fields[0]) if fields else DEFAULT_RETRIES
        backoff = parse_backoff(fields[1]) if len(fields) > 1 else DEFAULT_BACKOFF
    except SpecError as exc:
        raise SpecError(f"invalid {option} {quote(spec)}: {exc}{hint}") from None
    return retries, backoff


def parse_exit_code_rule(spec: str) -> list[RetryRule]:
    """``CODES[:RETRIES[:BACKOFF]]`` → one rule per code, each with its own budget."""
    head, *rest = split_fields(spec)
    try:
        codes = parse_codes(head)
    except SpecError as exc:
        raise SpecError(f"invalid --retry-exit-code {quote(spec)}: {exc}") from None
    retries, backoff = _budget_fields("--retry-exit-code", spec, rest)
    return [RetryRule(Matcher(exit_codes=frozenset({c})), retries, backoff) for c in sorted(codes)]


def parse_stderr_rule(spec: str) -> RetryRule:
    """``REGEX[:RETRIES[:BACKOFF]]``, where ``\\:`` is a colon inside the regex."""
    head, *rest = split_fields(spec, escapes=True)
    if not head:
        raise SpecError(f"invalid --retry-stderr {quote(spec)}: empty regex")
    try:
        compile_pattern(head)
    except SpecError as exc:
        raise SpecError(f"invalid --retry-stderr {quote(spec)}: {exc}") from None
    # 'http://host' reads as REGEX 'http', RETRIES '//host': say how to write a colon.
    hint = " (write a colon inside the regex as \\:)"
    retries, backoff = _budget_fields("--retry-stderr", spec, rest, hint)
    return RetryRule(Matcher(stderr=head), retries, backoff)


def parse_signal_rule(spec: str) -> list[RetryRule]:
    """``SIGNALS[:RETRIES[:BACKOFF]]`` → one rule per signal."""
    head, *rest = split_fields(spec)
    try:
        signals = parse_signal_list(head)
    except SpecError as exc:
        raise SpecError(f"invalid --retry-signal {quote(spec)}: {exc}") from None
    retries, backoff = _budget_fields("--retry-signal", spec, rest)
    return [RetryRule(Matcher(signals=frozenset({s})), retries, backoff) for s in signals]


def parse_timeout_rule(spec: str) -> RetryRule:
    """``[RETRIES][:BACKOFF]``: timed-out attempts are transient."""
    # --retry-timeout takes an optional value, so `--retry-timeout sleep 5` reads
    # the command as one: say how to end the options.
    hint = "" if spec[:1].isdigit() or spec[:1] in ":i" else " (put -- before the command)"
    retries, backoff = _budget_fields("--retry-timeout", spec, split_fields(spec), hint)
    return RetryRule(Matcher(timeout=True), retries, backoff)


def parse_unhealthy_rule(spec: str) -> RetryRule:
    """``[RETRIES][:BACKOFF]``: attempts stopped by a failing liveness probe are transient."""
    hint = "" if spec[:1].isdigit() or spec[:1] in ":i" else " (put -- before the command)"
    retries, backoff = _budget_fields("--retry-unhealthy", spec, split_fields(spec), hint)
    return RetryRule(Matcher(unhealthy=True), retries, backoff)
