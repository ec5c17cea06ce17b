"""The group file's values: each parser takes what tomllib gave and raises SpecError
naming the bad value, written as TOML writes it (true, [1, "a"]); and the rule that
decides whether a command string needs a shell."""

from __future__ import annotations

import math
from typing import Any

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.breaker import Breaker
from longrun_cli.policy.duration import MAX_DURATION, SECOND, parse_duration
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.matcher import compile_pattern
from longrun_cli.policy.rule import RetryRule
from longrun_cli.policy.signals import parse_signal
from longrun_cli.policy.spec import (
    parse_backoff,
    parse_codes,
    parse_retries,
    parse_timeout_rule,
    parse_unhealthy_rule,
)

_SHELL_SYNTAX = frozenset("$`\\\"'*?[]~|&;<>(){}#=%!\n")
# Words a shell runs itself (keywords and builtins with no binary of the same effect).
_SHELL_WORDS = frozenset(
    [
        "exec",
        "cd",
        "export",
        "set",
        "unset",
        "eval",
        ".",
        "source",
        "alias",
        "ulimit",
        "umask",
        "trap",
        "wait",
        "read",
        "shift",
        "readonly",
        "return",
        "exit",
        "break",
        "continue",
        "times",
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "for",
        "while",
        "until",
        "do",
        "done",
        "case",
        "esac",
        "function",
        "local",
        "command",
        "type",
        "hash",
        "jobs",
        "fg",
        "bg",
    ]
)


def shell(command: str) -> tuple[str, ...]:
    """argv for a command string: direct when it is plain words, else ``sh -c``.

    ``sleep 60`` and ``sh -c "sleep 60"`` behave the same, but the direct form
    costs one process less and receives signals itself. A leading ``exec`` is
    what that would do anyway.
    """
    words = command.split()
    if words and words[0] == "exec":
        words = words[1:]
    if words and words[0] not in _SHELL_WORDS and not _SHELL_SYNTAX.intersection(command):
        return tuple(words)
    return ("/bin/sh", "-c", command)


def as_duration(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise SpecError(f'expected a duration like "30s", got {_toml(raw)}')
    if isinstance(raw, (int, float)) and raw < 0:
        raise SpecError(f"invalid duration {raw}: must not be negative")
    if isinstance(raw, float):
        # str(1e308) is "1e+308", which no duration syntax reads: write it out.
        if not math.isfinite(raw) or raw > MAX_DURATION / SECOND:
            raise SpecError(f"invalid duration {raw}: too large")
        return parse_duration(f"{raw:.9f}")
    return parse_duration(str(raw))


def as_positive_duration(raw: Any) -> int:
    value = as_duration(raw)
    if value <= 0:
        raise SpecError(f"must be > 0, got {_toml(raw)}")
    return value


def as_command(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        if not raw.strip():
            raise SpecError("empty command")
        return shell(raw)
    if isinstance(raw, list) and all(isinstance(part, str) for part in raw):
        if not raw or not raw[0]:
            raise SpecError("empty command")
        return tuple(raw)
    raise SpecError(
        f"expected a string (run by sh -c) or a list of strings (argv), got {_toml(raw)}"
    )


def as_string(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise SpecError(f"expected a non-empty string, got {_toml(raw)}")
    return raw


def as_path(raw: Any) -> str:
    path = as_string(raw)
    if "\0" in path:
        raise SpecError(f"path {quote(path)} contains a NUL byte")
    return path


def as_line_count(raw: Any) -> int:
    """``log_lines``: how many lines of each task ``longrun ctl logs`` can show."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LOG_LINES:
        raise SpecError(f"expected an integer from 1 to {MAX_LOG_LINES}, got {_toml(raw)}")
    return raw


MAX_LOG_LINES = 100_000


def as_paths(raw: Any) -> list[str]:
    """``env_file``: one path or a list of paths."""
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise SpecError(f"expected a path or a list of paths, got {_toml(raw)}")
    return [as_path(item) for item in items]


def as_port(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise SpecError(f"expected a port number from 1 to 65535, got {_toml(raw)}")
    return raw


def as_scale(raw: Any) -> int:
    from longrun_cli.policy.replicas import MAX_SCALE

    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_SCALE:
        raise SpecError(f"expected a replica count from 1 to {MAX_SCALE}, got {_toml(raw)}")
    return raw


def as_breaker(raw: Any) -> Breaker:
    from longrun_cli.policy.breaker import parse_breaker

    return parse_breaker(as_string(raw))


def as_url(raw: Any) -> str:
    """``ping``: an http:// or https:// URL."""
    from longrun_cli.policy.group import check_http_url

    url = as_string(raw)
    try:
        check_http_url(url)
    except SpecError:
        raise SpecError(f"expected an http:// or https:// URL, got {_toml(raw)}") from None
    return url


def as_group_name(raw: Any) -> str:
    """``[runner] name``: it names the control socket file, so one printable path component."""
    from longrun_cli.control.paths import ControlError, check_name

    try:
        return check_name(as_string(raw))
    except ControlError:
        raise SpecError(f"a group name is one printable file name, got {_toml(raw)}") from None


def _toml(raw: Any) -> str:
    """A value as it reads in TOML (true, [1, "a"]), not as Python prints it (True, ['a'])."""
    import json

    if isinstance(raw, dict):
        return "{ " + ", ".join(f"{key} = {_toml(value)}" for key, value in raw.items()) + " }"
    if isinstance(raw, list):
        return "[" + ", ".join(_toml(item) for item in raw) + "]"
    return json.dumps(raw, ensure_ascii=True)


def as_hook(raw: Any) -> str:
    """A string for ``sh -c``, or a list (argv, as ``command`` takes), quoted for it."""
    if isinstance(raw, list) and raw and all(isinstance(part, str) for part in raw):
        import shlex

        return shlex.join(raw)
    if not isinstance(raw, str) or not raw:
        raise SpecError(
            f"expected a command: a non-empty string or a list of strings, got {_toml(raw)}"
        )
    return raw


def as_strings(raw: Any) -> list[str]:
    # Numbers are taken as they are written: retry_exit_code = 75 is "75".
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        return [str(raw)]
    if isinstance(raw, list) and all(
        isinstance(item, (str, int)) and not isinstance(item, bool) for item in raw
    ):
        return [str(item) for item in raw]
    raise SpecError(f"expected a string or a list of strings, got {_toml(raw)}")


def as_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(f"expected true or false, got {_toml(raw)}")
    return raw


def as_env(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SpecError(f'expected a table of NAME = "value", got {_toml(raw)}')
    env: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SpecError(f"{name}: expected a string or number, got {_toml(value)}")
        env[name] = str(value)
    return env


def as_signal(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SpecError(f"expected a signal name or number, got {_toml(raw)}")
    return parse_signal(str(raw))


def as_signals(raw: Any) -> list[int]:
    items = raw if isinstance(raw, list) else [raw]
    numbers: list[int] = []
    for item in items:
        number = as_signal(item)
        if number not in numbers:
            numbers.append(number)
    if not numbers:
        raise SpecError("empty signal list")
    return numbers


def as_codes(raw: Any) -> frozenset[int]:
    if isinstance(raw, str):
        return parse_codes(raw)
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise SpecError("empty list of exit codes")
    codes: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise SpecError(f'expected exit codes like [75] or "64-78", got {_toml(raw)}')
        codes |= parse_codes(str(item))
    return frozenset(codes)


def as_retries(raw: Any) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SpecError(f'expected an integer >= 1 or "inf", got {_toml(raw)}')
    return parse_retries(str(raw))


def as_backoff(raw: Any) -> Backoff:
    if not isinstance(raw, str):
        raise SpecError(f'expected a backoff like "2s,60s,3", got {_toml(raw)}')
    return parse_backoff(raw)


def as_regex(raw: Any) -> str:
    pattern = as_string(raw)
    compile_pattern(pattern)
    return pattern


def as_ratio(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
        raise SpecError(f"expected a number from 0 to 1, got {_toml(raw)}")
    return float(raw)


def as_timeout_rule(raw: Any) -> RetryRule:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise SpecError(f'expected true or "[RETRIES][:BACKOFF]", got {_toml(raw)}')
    return parse_timeout_rule(raw)


def as_unhealthy_rule(raw: Any) -> RetryRule:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise SpecError(f'expected true or "[RETRIES][:BACKOFF]", got {_toml(raw)}')
    return parse_unhealthy_rule(raw)
