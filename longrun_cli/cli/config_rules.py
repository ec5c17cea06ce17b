"""A group file's retry rules: ``retry = [...]`` tables and the exec spec strings.

Kept apart from the loader (config.py) so that neither grows past a screenful of
responsibilities; errors name file, line and key through the loader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from longrun_cli.cli import toml_values as values
from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.matcher import Matcher
from longrun_cli.policy.rule import RetryRule
from longrun_cli.policy.spec import parse_exit_code_rule, parse_signal_rule, parse_stderr_rule

if TYPE_CHECKING:
    from longrun_cli.cli.config import _TomlLoader

RULE_KEYS = ("exit_codes", "stderr", "signals", "timeout", "unhealthy", "retries", "backoff")


def read_policy(loader: _TomlLoader, where: tuple[str, ...], table: dict[str, Any]) -> RetryPolicy:
    rules: list[RetryRule] = []
    retry = table.get("retry", [])
    if not isinstance(retry, list):
        raise loader.error((*where, "retry"), "must be a list of tables")
    for rule in retry:
        rules += read_rule(loader, (*where, "retry"), rule)
    for key, parse in (
        ("retry_exit_code", parse_exit_code_rule),
        ("retry_signal", parse_signal_rule),
    ):
        for spec in loader.value((*where, key), table.get(key, []), values.as_strings):
            rules += loader.value((*where, key), spec, parse)
    for spec in loader.value(
        (*where, "retry_stderr"), table.get("retry_stderr", []), values.as_strings
    ):
        rules.append(loader.value((*where, "retry_stderr"), spec, parse_stderr_rule))
    if "retry_timeout" in table:
        raw = table["retry_timeout"]
        spec = "" if raw is True else raw
        rules.append(loader.value((*where, "retry_timeout"), spec, values.as_timeout_rule))
    if "retry_unhealthy" in table:
        raw = table["retry_unhealthy"]
        spec = "" if raw is True else raw
        rules.append(loader.value((*where, "retry_unhealthy"), spec, values.as_unhealthy_rule))
    success: frozenset[int] = frozenset()
    if "success_exit_codes" in table:
        success = loader.value(
            (*where, "success_exit_codes"), table["success_exit_codes"], values.as_codes
        )
    jitter = loader.value((*where, "jitter"), table.get("jitter", 0.0), values.as_ratio)
    return loader.value(where, rules, lambda r: RetryPolicy.build(r, success, jitter))


def read_rule(loader: _TomlLoader, where: tuple[str, ...], rule: Any) -> list[RetryRule]:
    if not isinstance(rule, dict):
        raise loader.error(where, "each entry must be a table like { exit_codes = [75] }")
    loader.check_keys(where, rule, RULE_KEYS)
    retries = loader.value((*where, "retries"), rule.get("retries", ""), values.as_retries)
    backoff = loader.value((*where, "backoff"), rule.get("backoff", ""), values.as_backoff)
    stderr = None
    if "stderr" in rule:
        stderr = loader.value((*where, "stderr"), rule["stderr"], values.as_regex)
    timeout = loader.value((*where, "timeout"), rule.get("timeout", False), values.as_bool)
    unhealthy = loader.value((*where, "unhealthy"), rule.get("unhealthy", False), values.as_bool)
    matchers: list[Matcher] = []
    if "exit_codes" in rule and "signals" in rule:
        # An attempt either exits or is killed: such a rule could never fire.
        raise loader.error(where, "a rule cannot match both exit_codes and signals")
    for flag, name in ((timeout, "timeout"), (unhealthy, "unhealthy")):
        if (
            flag
            and len(rule.keys() & {"exit_codes", "signals", "stderr", "timeout", "unhealthy"}) > 1
        ):
            raise loader.error(where, f"{name} = true cannot be combined with other conditions")
    if "exit_codes" in rule:
        codes = loader.value((*where, "exit_codes"), rule["exit_codes"], values.as_codes)
        matchers = [Matcher(exit_codes=frozenset({c}), stderr=stderr) for c in sorted(codes)]
    elif "signals" in rule:
        signals = loader.value((*where, "signals"), rule["signals"], values.as_signals)
        matchers = [Matcher(signals=frozenset({s}), stderr=stderr) for s in signals]
    elif stderr is not None:
        matchers = [Matcher(stderr=stderr)]
    elif timeout:
        matchers = [Matcher(timeout=True)]
    elif unhealthy:
        matchers = [Matcher(unhealthy=True)]
    else:
        raise loader.error(
            where,
            "a rule needs exit_codes, stderr, signals, timeout = true or unhealthy = true",
        )
    return [loader.value(where, m, lambda m: RetryRule(m, retries, backoff)) for m in matchers]
