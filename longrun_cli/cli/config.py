"""Group sources → a validated GroupSpec: a TOML file, ``-t NAME=COMMAND`` or a Procfile.

Every error is a ConfigError naming the file, the line where it can be found, and
the key, with a "did you mean" for misspelt keys.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import MAX_DURATION, SECOND, parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    Condition,
    GroupSpec,
    GroupTask,
    ReadyProbe,
)
from longrun_cli.policy.matcher import Matcher, compile_pattern
from longrun_cli.policy.rule import RetryRule
from longrun_cli.policy.signals import parse_signal
from longrun_cli.policy.spec import (
    parse_backoff,
    parse_codes,
    parse_exit_code_rule,
    parse_retries,
    parse_signal_rule,
    parse_stderr_rule,
    parse_timeout_rule,
)
from longrun_cli.policy.taskspec import TaskSpec

T = TypeVar("T")
StrPath = str | os.PathLike[str]

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")

RUNNER_KEYS = ("shutdown_timeout", "kill_after")
TASK_KEYS = (
    "command",
    "interval",
    "delay",
    "timeout",
    "deadline",
    "stop_signal",
    "kill_after",
    "retry",
    "retry_exit_code",
    "retry_stderr",
    "retry_signal",
    "retry_timeout",
    "jitter",
    "success_exit_codes",
    "shutdown",
    "shutdown_timeout",
    "foreground",
    "depends_on",
    "ready",
    "env",
    "cwd",
)
RULE_KEYS = ("exit_codes", "stderr", "signals", "timeout", "retries", "backoff")
READY_KEYS = ("stdout", "command", "interval", "timeout")


class ConfigError(SpecError):
    """A group definition is invalid; the message names file, line and key."""


# Characters that give a command line meaning only a shell can supply.
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


# --- -t NAME=COMMAND ---------------------------------------------------------------


def from_inline(
    definitions: Sequence[str], shutdown_timeout: int, kill_after: int | None
) -> GroupSpec:
    tasks: list[GroupTask] = []
    seen: set[str] = set()
    for definition in definitions:
        name, equals, command = definition.partition("=")
        name = name.strip()
        if not equals or not NAME.match(name):
            raise ConfigError(
                f"-t {definition!r}: expected NAME=COMMAND with NAME made of letters, "
                "digits, '_', '.' or '-'"
            )
        if not command.strip():
            raise ConfigError(f"-t {definition!r}: empty command")
        if name in seen:
            raise ConfigError(f"-t {definition!r}: duplicate task name {name!r}")
        seen.add(name)
        tasks.append(GroupTask(_plain_spec(name, command, kill_after)))
    return _group(tasks, shutdown_timeout, "-t")


# --- Procfile ----------------------------------------------------------------------


def from_procfile(path: StrPath, shutdown_timeout: int, kill_after: int | None) -> GroupSpec:
    text = _read(path)
    tasks: list[GroupTask] = []
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected 'name: command', got {raw.strip()!r}")
        name, command = match.group(1), match.group(2)
        if name in lines:
            raise ConfigError(
                f"{path}:{number}: duplicate process name {name!r} (first on line {lines[name]})"
            )
        lines[name] = number
        try:
            tasks.append(GroupTask(_plain_spec(name, command, kill_after)))
        except SpecError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
    return _group(tasks, shutdown_timeout, str(path))


def _plain_spec(name: str, command: str, kill_after: int | None) -> TaskSpec:
    if kill_after is None:
        return TaskSpec(name=name, argv=shell(command))
    return TaskSpec(name=name, argv=shell(command), kill_after=kill_after)


def _group(tasks: list[GroupTask], shutdown_timeout: int, source: str) -> GroupSpec:
    if not tasks:
        raise ConfigError(f"{source}: no tasks defined")
    try:
        return GroupSpec(tuple(tasks), shutdown_timeout)
    except SpecError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# How long a FIFO or device given as the group file may take to deliver its text.
READ_PATIENCE = 10.0


def _read(path: StrPath) -> str:
    """The file's text; a FIFO (``<(...)``) is read without ever blocking for good."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory, not a file")
        data = _read_all(fd, path, wait=not stat.S_ISREG(mode))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_all(fd: int, path: StrPath, *, wait: bool) -> bytes:
    """Read to the end; ``wait``: a FIFO or device, polled first, within READ_PATIENCE.

    Linux reports a FIFO readable only once a writer has written or come and
    gone, so polling first tells "no writer yet" from the end of the text.
    """
    import select
    import time

    chunks: list[bytes] = []
    deadline = time.monotonic() + READ_PATIENCE
    while True:
        if wait:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not readable:
                raise ConfigError(
                    f"{path}: nothing to read within {READ_PATIENCE:g}s (a FIFO nobody writes?)"
                )
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# --- TOML --------------------------------------------------------------------------


def from_toml(
    path: StrPath, shutdown_timeout: int | None = None, kill_after: int | None = None
) -> GroupSpec:
    """Load ``path``; command-line values, when given, override ``[runner]``."""
    import tomllib

    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    return _TomlLoader(path, text).load(data, shutdown_timeout, kill_after)


class _TomlLoader:
    def __init__(self, path: StrPath, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, where: tuple[str, ...], message: str) -> ConfigError:
        line = self.locate(where)
        place = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{place}: {'.'.join(where)}: {message}")

    def locate(self, where: tuple[str, ...]) -> int | None:
        """Best effort: the line of the table header, then of the key inside it."""
        if not where:
            return None
        # A table of its own ([tasks.a.extra], [task.web]): the line of its header.
        own = _header_pattern(where, prefix=True)
        found = next((n for n, line in enumerate(self.lines) if own.match(line)), None)
        if found is not None:
            return found + 1
        table, key = where[:2], where[2] if len(where) > 2 else None
        if where[0] == "runner" or len(where) == 1:
            table, key = where[:1], where[1] if len(where) > 1 else None
        header = _header_pattern(table, prefix=False)
        start = next((n for n, line in enumerate(self.lines) if header.match(line)), None)
        if start is None:
            return None
        if key is None:
            return start + 1
        key_line = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
        for number in range(start + 1, len(self.lines)):
            if self.lines[number].lstrip().startswith("["):
                break
            if key_line.match(self.lines[number]):
                return number + 1
        return start + 1

    def check_keys(
        self, where: tuple[str, ...], table: dict[str, Any], allowed: tuple[str, ...]
    ) -> None:
        for key in table:
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(allowed)
                raise self.error((*where, key), f"unknown key{hint}; known keys: {known}")

    def value(self, where: tuple[str, ...], raw: Any, parse: Callable[[Any], T]) -> T:
        try:
            return parse(raw)
        except SpecError as exc:
            raise self.error(where, str(exc)) from None

    def load(
        self, data: dict[str, Any], shutdown_timeout: int | None, kill_after: int | None
    ) -> GroupSpec:
        self.check_keys((), data, ("runner", "tasks"))
        runner = data.get("runner", {})
        if not isinstance(runner, dict):
            raise self.error(("runner",), "must be a table")
        self.check_keys(("runner",), runner, RUNNER_KEYS)
        if shutdown_timeout is None:
            shutdown_timeout = DEFAULT_SHUTDOWN_TIMEOUT
            if "shutdown_timeout" in runner:
                shutdown_timeout = self.value(
                    ("runner", "shutdown_timeout"), runner["shutdown_timeout"], _duration
                )
        if kill_after is None and "kill_after" in runner:
            kill_after = self.value(("runner", "kill_after"), runner["kill_after"], _duration)
        tasks = data.get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise self.error(("tasks",), "define at least one [tasks.NAME] table")
        group_tasks = [self.task(name, table, kill_after) for name, table in tasks.items()]
        try:
            return GroupSpec(tuple(group_tasks), shutdown_timeout)
        except SpecError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def task(self, name: str, table: Any, kill_after: int | None) -> GroupTask:
        where = ("tasks", name)
        if not isinstance(table, dict):
            raise self.error(where, "must be a table")
        if not NAME.match(name):
            raise self.error(where, "task names may only use letters, digits, '_', '.' and '-'")
        self.check_keys(where, table, TASK_KEYS)
        if "command" not in table:
            raise self.error(where, "missing key 'command'")
        argv = self.value((*where, "command"), table["command"], _command)
        fields: dict[str, Any] = {"name": name, "argv": argv}
        for key in ("interval", "timeout", "deadline"):
            if key in table:
                fields[key] = self.value((*where, key), table[key], _positive_duration)
        for key in ("delay", "kill_after", "shutdown_timeout"):
            if key in table:
                fields[key] = self.value((*where, key), table[key], _duration)
        if "kill_after" not in fields and kill_after is not None:
            fields["kill_after"] = kill_after
        if "stop_signal" in table:
            fields["stop_signal"] = self.value(
                (*where, "stop_signal"), table["stop_signal"], _signal
            )
        if "shutdown" in table:
            fields["shutdown"] = self.value((*where, "shutdown"), table["shutdown"], _hook)
        if "foreground" in table:
            fields["foreground"] = self.value((*where, "foreground"), table["foreground"], _bool)
        if "env" in table:
            fields["env"] = self.value((*where, "env"), table["env"], _env)
        if "cwd" in table:
            cwd = self.value((*where, "cwd"), table["cwd"], _path)
            base = os.path.dirname(os.path.abspath(self.path))
            fields["cwd"] = os.path.realpath(os.path.join(base, cwd))
        fields["policy"] = self.policy(where, table)
        spec = self.value(where, fields, lambda f: TaskSpec(**f))
        depends = self.depends(where, table.get("depends_on", {}))
        ready = self.ready(where, table["ready"]) if "ready" in table else None
        return GroupTask(spec, depends, ready)

    def policy(self, where: tuple[str, ...], table: dict[str, Any]) -> RetryPolicy:
        rules: list[RetryRule] = []
        retry = table.get("retry", [])
        if not isinstance(retry, list):
            raise self.error((*where, "retry"), "must be a list of tables")
        for rule in retry:
            rules += self.rule((*where, "retry"), rule)
        for key, parse in (
            ("retry_exit_code", parse_exit_code_rule),
            ("retry_signal", parse_signal_rule),
        ):
            for spec in self.value((*where, key), table.get(key, []), _strings):
                rules += self.value((*where, key), spec, parse)
        for spec in self.value((*where, "retry_stderr"), table.get("retry_stderr", []), _strings):
            rules.append(self.value((*where, "retry_stderr"), spec, parse_stderr_rule))
        if "retry_timeout" in table:
            raw = table["retry_timeout"]
            spec = "" if raw is True else raw
            rules.append(self.value((*where, "retry_timeout"), spec, _timeout_rule))
        success: frozenset[int] = frozenset()
        if "success_exit_codes" in table:
            success = self.value(
                (*where, "success_exit_codes"), table["success_exit_codes"], _codes
            )
        jitter = self.value((*where, "jitter"), table.get("jitter", 0.0), _ratio)
        return self.value(where, rules, lambda r: RetryPolicy.build(r, success, jitter))

    def rule(self, where: tuple[str, ...], rule: Any) -> list[RetryRule]:
        if not isinstance(rule, dict):
            raise self.error(where, "each entry must be a table like { exit_codes = [75] }")
        self.check_keys(where, rule, RULE_KEYS)
        retries = self.value((*where, "retries"), rule.get("retries", ""), _retries)
        backoff = self.value((*where, "backoff"), rule.get("backoff", ""), _backoff)
        stderr = None
        if "stderr" in rule:
            stderr = self.value((*where, "stderr"), rule["stderr"], _regex)
        timeout = self.value((*where, "timeout"), rule.get("timeout", False), _bool)
        matchers: list[Matcher] = []
        if "exit_codes" in rule and "signals" in rule:
            # An attempt either exits or is killed: such a rule could never fire.
            raise self.error(where, "a rule cannot match both exit_codes and signals")
        if timeout and len(rule.keys() & {"exit_codes", "signals", "stderr"}):
            raise self.error(where, "timeout = true cannot be combined with other conditions")
        if "exit_codes" in rule:
            codes = self.value((*where, "exit_codes"), rule["exit_codes"], _codes)
            matchers = [Matcher(exit_codes=frozenset({c}), stderr=stderr) for c in sorted(codes)]
        elif "signals" in rule:
            signals = self.value((*where, "signals"), rule["signals"], _signals)
            matchers = [Matcher(signals=frozenset({s}), stderr=stderr) for s in signals]
        elif stderr is not None:
            matchers = [Matcher(stderr=stderr)]
        elif timeout:
            matchers = [Matcher(timeout=True)]
        else:
            raise self.error(where, "a rule needs exit_codes, stderr, signals or timeout = true")
        return [self.value(where, m, lambda m: RetryRule(m, retries, backoff)) for m in matchers]

    def depends(self, where: tuple[str, ...], raw: Any) -> tuple[tuple[str, Condition], ...]:
        key = (*where, "depends_on")
        if isinstance(raw, list):
            return tuple((self.value(key, name, _string), Condition.STARTED) for name in raw)
        if not isinstance(raw, dict):
            raise self.error(key, 'must be a table like { migrate = "succeeded" } or a list')
        result: list[tuple[str, Condition]] = []
        for name, condition in raw.items():
            try:
                result.append((name, Condition(condition)))
            except ValueError:
                raise self.error(
                    (*key, name),
                    f"condition {condition!r} must be one of started, ready, succeeded",
                ) from None
        return tuple(result)

    def ready(self, where: tuple[str, ...], raw: Any) -> ReadyProbe:
        key = (*where, "ready")
        if not isinstance(raw, dict):
            raise self.error(key, 'must be a table like { stdout = "Listening" }')
        self.check_keys(key, raw, READY_KEYS)
        fields: dict[str, Any] = {}
        if "stdout" in raw:
            fields["stdout"] = self.value((*key, "stdout"), raw["stdout"], _regex)
        if "command" in raw:
            fields["command"] = self.value((*key, "command"), raw["command"], _string)
        for name in ("interval", "timeout"):
            if name in raw:
                fields[name] = self.value((*key, name), raw[name], _positive_duration)
        return self.value(key, fields, lambda f: ReadyProbe(**f))


def _header_pattern(path: tuple[str, ...], *, prefix: bool) -> re.Pattern[str]:
    """``[a.b]`` (or, with ``prefix``, ``[a.b.more]`` too), bare or quoted keys."""
    dotted = r"\s*\.\s*".join(rf"(?:{re.escape(p)}|\"{re.escape(p)}\")" for p in path)
    end = r"\s*[.\]]" if prefix else r"\s*\]"
    return re.compile(r"^\s*\[\[?\s*" + dotted + end)


# --- value parsers: each raises SpecError naming the bad value -----------------------


def _duration(raw: Any) -> int:
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


def _positive_duration(raw: Any) -> int:
    value = _duration(raw)
    if value <= 0:
        raise SpecError(f"must be > 0, got {_toml(raw)}")
    return value


def _command(raw: Any) -> tuple[str, ...]:
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


def _string(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise SpecError(f"expected a non-empty string, got {_toml(raw)}")
    return raw


def _path(raw: Any) -> str:
    path = _string(raw)
    if "\0" in path:
        raise SpecError(f"cwd {path!r} contains a NUL byte")
    return path


def _toml(raw: Any) -> str:
    """A value as it reads in TOML (true, [1, "a"]), not as Python prints it (True, ['a'])."""
    import json

    if isinstance(raw, dict):
        return "{ " + ", ".join(f"{key} = {_toml(value)}" for key, value in raw.items()) + " }"
    if isinstance(raw, list):
        return "[" + ", ".join(_toml(item) for item in raw) + "]"
    return json.dumps(raw, ensure_ascii=True)


def _hook(raw: Any) -> str:
    """A string for ``sh -c``, or a list (argv, as ``command`` takes), quoted for it."""
    if isinstance(raw, list) and raw and all(isinstance(part, str) for part in raw):
        import shlex

        return shlex.join(raw)
    if not isinstance(raw, str) or not raw:
        raise SpecError(
            f"expected a command: a non-empty string or a list of strings, got {_toml(raw)}"
        )
    return raw


def _strings(raw: Any) -> list[str]:
    # Numbers are taken as they are written: retry_exit_code = 75 is "75".
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        return [str(raw)]
    if isinstance(raw, list) and all(
        isinstance(item, (str, int)) and not isinstance(item, bool) for item in raw
    ):
        return [str(item) for item in raw]
    raise SpecError(f"expected a string or a list of strings, got {_toml(raw)}")


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(f"expected true or false, got {_toml(raw)}")
    return raw


def _env(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SpecError(f'expected a table of NAME = "value", got {_toml(raw)}')
    env: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SpecError(f"{name}: expected a string or number, got {_toml(value)}")
        env[name] = str(value)
    return env


def _signal(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SpecError(f"expected a signal name or number, got {_toml(raw)}")
    return parse_signal(str(raw))


def _signals(raw: Any) -> list[int]:
    items = raw if isinstance(raw, list) else [raw]
    numbers: list[int] = []
    for item in items:
        number = _signal(item)
        if number not in numbers:
            numbers.append(number)
    if not numbers:
        raise SpecError("empty signal list")
    return numbers


def _codes(raw: Any) -> frozenset[int]:
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


def _retries(raw: Any) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SpecError(f'expected an integer >= 1 or "inf", got {_toml(raw)}')
    return parse_retries(str(raw))


def _backoff(raw: Any) -> Backoff:
    if not isinstance(raw, str):
        raise SpecError(f'expected a backoff like "2s,60s,3", got {_toml(raw)}')
    return parse_backoff(raw)


def _regex(raw: Any) -> str:
    pattern = _string(raw)
    compile_pattern(pattern)
    return pattern


def _ratio(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
        raise SpecError(f"expected a number from 0 to 1, got {_toml(raw)}")
    return float(raw)


def _timeout_rule(raw: Any) -> RetryRule:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise SpecError(f'expected true or "[RETRIES][:BACKOFF]", got {_toml(raw)}')
    return parse_timeout_rule(raw)
