"""A group's TOML file → a validated GroupSpec (``-t`` and Procfiles: ``cli.procfile``).

Every error is a ConfigError naming the file, the line where it can be found, and
the key, with a "did you mean" for misspelt keys.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from longrun_cli.cli import toml_values as values
from longrun_cli.cli.envfiles import relative_to
from longrun_cli.cli.procfile import NAME
from longrun_cli.cli.textfile import ConfigError, read_text
from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import (
    DEFAULT_LOG_LINES,
    DEFAULT_SHUTDOWN_TIMEOUT,
    Condition,
    DependencyError,
    GroupSpec,
    GroupTask,
)
from longrun_cli.policy.taskspec import TaskSpec

T = TypeVar("T")
if TYPE_CHECKING:
    from longrun_cli.policy.lockurl import LockSpec
    from longrun_cli.policy.schedule import Schedule

StrPath = str | os.PathLike[str]

RUNNER_KEYS = (
    "shutdown_timeout", "kill_after", "name", "control", "log_lines", "env_file", "port",
    "state", "lock", "lock_wait", "lock_ttl",
)  # fmt: skip
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
    "env_file",
    "cwd",
    "scale",
    "schedule",
    "timezone",
    "on_failure",
    "ping",
    "circuit_breaker",
    "health",
    "retry_unhealthy",
)


# --- TOML --------------------------------------------------------------------------


def from_toml(
    path: StrPath, shutdown_timeout: int | None = None, kill_after: int | None = None
) -> GroupSpec:
    """Load ``path``; command-line values, when given, override ``[runner]``."""
    import tomllib

    text = read_text(path)
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
                    ("runner", "shutdown_timeout"), runner["shutdown_timeout"], values.as_duration
                )
        if kill_after is None and "kill_after" in runner:
            kill_after = self.value(
                ("runner", "kill_after"), runner["kill_after"], values.as_duration
            )
        tasks = data.get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise self.error(("tasks",), "define at least one [tasks.NAME] table")
        state = None
        if "state" in runner:
            # One file for the group, an entry per task; relative to this file.
            raw = self.value(("runner", "state"), runner["state"], values.as_path)
            state = os.path.join(os.path.dirname(os.path.abspath(self.path)), raw)
        group_tasks = [self.task(name, table, kill_after) for name, table in tasks.items()]
        if state is not None:
            group_tasks = [
                dataclasses.replace(task, spec=task.spec._replace(state_file=state))
                for task in group_tasks
            ]
        name = control = None
        log_lines = DEFAULT_LOG_LINES
        if "name" in runner:
            name = self.value(("runner", "name"), runner["name"], values.as_group_name)
        if "control" in runner:
            control = self.value(("runner", "control"), runner["control"], values.as_path)
        if "log_lines" in runner:
            log_lines = self.value(
                ("runner", "log_lines"), runner["log_lines"], values.as_line_count
            )
        env_files = self.env_files(("runner", "env_file"), runner)
        port = None
        if "port" in runner:
            port = self.value(("runner", "port"), runner["port"], values.as_port)
        lock = self.lock(runner)
        try:
            return GroupSpec(
                tuple(group_tasks),
                shutdown_timeout,
                name,
                control,
                log_lines,
                env_files,
                port,
                lock,
            )
        except DependencyError as exc:
            line = self.locate(("tasks", exc.task, "depends_on"))
            raise ConfigError(
                f"{self.path}:{line}: {exc}" if line else f"{self.path}: {exc}"
            ) from None
        except SpecError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def lock(self, runner: dict[str, Any]) -> LockSpec | None:
        """[runner] lock, lock_wait, lock_ttl: as the group's --lock options."""
        if not runner.keys() & {"lock", "lock_wait", "lock_ttl"}:
            return None
        from longrun_cli.policy.lockurl import parse_lock

        if "lock" not in runner:
            raise self.error(("runner",), "lock_wait and lock_ttl need lock")
        url = self.value(("runner", "lock"), runner["lock"], values.as_string)
        durations = {}
        for key in ("lock_wait", "lock_ttl"):
            if key in runner:
                durations[key] = self.value(("runner", key), runner[key], values.as_duration)
        return self.value(
            ("runner", "lock"),
            url,
            lambda u: parse_lock(u, durations.get("lock_ttl"), durations.get("lock_wait")),
        )

    def task(self, name: str, table: Any, kill_after: int | None) -> GroupTask:
        where = ("tasks", name)
        if not isinstance(table, dict):
            raise self.error(where, "must be a table")
        if not NAME.match(name):
            raise self.error(where, "task names may only use letters, digits, '_', '.' and '-'")
        self.check_keys(where, table, TASK_KEYS)
        if "command" not in table:
            raise self.error(where, "missing key 'command'")
        argv = self.value((*where, "command"), table["command"], values.as_command)
        fields: dict[str, Any] = {"name": name, "argv": argv}
        for key in ("interval", "timeout", "deadline"):
            if key in table:
                fields[key] = self.value((*where, key), table[key], values.as_positive_duration)
        for key in ("delay", "kill_after", "shutdown_timeout"):
            if key in table:
                fields[key] = self.value((*where, key), table[key], values.as_duration)
        if "kill_after" not in fields and kill_after is not None:
            fields["kill_after"] = kill_after
        if "stop_signal" in table:
            fields["stop_signal"] = self.value(
                (*where, "stop_signal"), table["stop_signal"], values.as_signal
            )
        for key in ("shutdown", "on_failure"):
            if key in table:
                fields[key] = self.value((*where, key), table[key], values.as_hook)
        if "ping" in table:
            fields["ping"] = self.value((*where, "ping"), table["ping"], values.as_url)
        if "circuit_breaker" in table:
            fields["breaker"] = self.value(
                (*where, "circuit_breaker"), table["circuit_breaker"], values.as_breaker
            )
        if "health" in table:
            from longrun_cli.cli.config_probes import read_health

            fields["health"] = read_health(self, where, table["health"])
        if "foreground" in table:
            fields["foreground"] = self.value(
                (*where, "foreground"), table["foreground"], values.as_bool
            )
        if "env" in table:
            fields["env"] = self.value((*where, "env"), table["env"], values.as_env)
        fields["env_files"] = self.env_files((*where, "env_file"), table)
        if "schedule" in table:
            fields["schedule"] = self.schedule(where, table)
        elif "timezone" in table:
            raise self.error((*where, "timezone"), "applies to schedule, which is not given")
        if "cwd" in table:
            cwd = self.value((*where, "cwd"), table["cwd"], values.as_path)
            base = os.path.dirname(os.path.abspath(self.path))
            fields["cwd"] = os.path.realpath(os.path.join(base, cwd))
        fields["policy"] = self.policy(where, table)
        spec = self.value(where, fields, lambda f: TaskSpec(**f))
        depends = self.depends(where, table.get("depends_on", {}))
        ready = None
        if "ready" in table:
            from longrun_cli.cli.config_probes import read_ready

            ready = read_ready(self, where, table["ready"])
        scale = 1
        if "scale" in table:
            scale = self.value((*where, "scale"), table["scale"], values.as_scale)
        return GroupTask(spec, depends, ready, scale)

    def schedule(self, where: tuple[str, ...], table: dict[str, Any]) -> Schedule:
        from longrun_cli.cli.zones import local_zone
        from longrun_cli.policy.schedule import parse_schedule

        zone = None
        if "timezone" in table:
            zone = self.value((*where, "timezone"), table["timezone"], values.as_string)
        text = self.value((*where, "schedule"), table["schedule"], values.as_string)
        return self.value(
            (*where, "schedule"), text, lambda t: parse_schedule(t, zone, local_zone())
        )

    def env_files(self, where: tuple[str, ...], table: dict[str, Any]) -> tuple[str, ...]:
        """``env_file``: a path or a list, relative to this file's directory."""
        if "env_file" not in table:
            return ()
        paths = self.value(where, table["env_file"], values.as_paths)
        base = os.path.dirname(os.path.abspath(self.path))
        return tuple(relative_to(path, base) for path in paths)

    def policy(self, where: tuple[str, ...], table: dict[str, Any]) -> RetryPolicy:
        from longrun_cli.cli.config_rules import read_policy

        return read_policy(self, where, table)

    def depends(self, where: tuple[str, ...], raw: Any) -> tuple[tuple[str, Condition], ...]:
        key = (*where, "depends_on")
        if isinstance(raw, list):
            return tuple(
                (self.value(key, name, values.as_string), Condition.STARTED) for name in raw
            )
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


def _header_pattern(path: tuple[str, ...], *, prefix: bool) -> re.Pattern[str]:
    """``[a.b]`` (or, with ``prefix``, ``[a.b.more]`` too), bare or quoted keys."""
    dotted = r"\s*\.\s*".join(rf"(?:{re.escape(p)}|\"{re.escape(p)}\")" for p in path)
    end = r"\s*[.\]]" if prefix else r"\s*\]"
    return re.compile(r"^\s*\[\[?\s*" + dotted + end)
