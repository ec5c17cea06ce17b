"""A task's complete, validated configuration: what ``exec`` and each group entry build."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.errors import SpecError, quote

if TYPE_CHECKING:
    from longrun_cli.policy.breaker import Breaker
    from longrun_cli.policy.group import ReadyProbe
    from longrun_cli.policy.lockurl import LockSpec
    from longrun_cli.policy.probes import HealthCheck
    from longrun_cli.policy.schedule import Schedule

_NO_ENV: Mapping[str, str] = MappingProxyType({})
_NO_RULES = RetryPolicy()


# In declaration order: equality, repr and _replace go by these.
_FIELDS = (
    "name",
    "argv",
    "policy",
    "interval",
    "delay",
    "timeout",
    "deadline",
    "stop_signal",
    "kill_after",
    "shutdown",
    "shutdown_timeout",
    "foreground",
    "env",
    "cwd",
    "file_env",
    "env_files",
    "schedule",
    "on_failure",
    "ping",
    "breaker",
    "ready",
    "health",
    "state_file",
    "lock",
)


class TaskSpec:
    """Durations are nanoseconds; ``None`` means "not set" (one-shot, no timeout, …).

    An immutable value validated when built. A plain slotted class: it is built on
    every start-up, where a NamedTuple of this many fields costs 2 M instructions to
    generate and a frozen dataclass milliseconds; this one comes compiled from the .pyc.
    """

    __slots__ = _FIELDS

    name: str
    argv: tuple[str, ...]
    policy: RetryPolicy
    interval: int | None
    delay: int
    timeout: int | None
    deadline: int | None
    stop_signal: int
    kill_after: int
    shutdown: str | None
    shutdown_timeout: int
    foreground: bool
    env: Mapping[str, str]
    cwd: str | None
    # Read from env files (--env-file, env_file), below ``env`` in precedence; the
    # plan names the files and the keys, never these values.
    file_env: Mapping[str, str]
    env_files: tuple[str, ...]
    schedule: Schedule | None  # cron: runs at its fire times (exclusive with interval)
    on_failure: str | None  # sh -c, once, when the task ends failed, exhausted or past deadline
    ping: str | None  # a healthchecks.io check URL: /start, success, /fail
    breaker: Breaker | None  # interval and schedule tasks: open instead of ending
    ready: ReadyProbe | None  # exec --ready (a group task's is GroupTask.ready)
    health: HealthCheck | None  # --health: a liveness probe while an attempt runs
    state_file: str | None  # --state-file: budgets that survive a restart of longrun
    lock: LockSpec | None  # --lock: at most one longrun among those sharing it runs

    def __init__(
        self,
        name: str,
        argv: tuple[str, ...],
        policy: RetryPolicy = _NO_RULES,
        interval: int | None = None,
        delay: int = 0,
        timeout: int | None = None,
        deadline: int | None = None,
        stop_signal: int = signal.SIGTERM,
        kill_after: int = 10 * SECOND,
        shutdown: str | None = None,
        shutdown_timeout: int = 30 * SECOND,
        foreground: bool = False,
        env: Mapping[str, str] = _NO_ENV,
        cwd: str | None = None,
        file_env: Mapping[str, str] = _NO_ENV,
        env_files: tuple[str, ...] = (),
        schedule: Schedule | None = None,
        on_failure: str | None = None,
        ping: str | None = None,
        breaker: Breaker | None = None,
        ready: ReadyProbe | None = None,
        health: HealthCheck | None = None,
        state_file: str | None = None,
        lock: LockSpec | None = None,
    ) -> None:
        values = (
            name, argv, policy, interval, delay, timeout, deadline, stop_signal, kill_after,
            shutdown, shutdown_timeout, foreground, env, cwd, file_env, env_files, schedule,
            on_failure, ping, breaker, ready, health, state_file, lock,
        )  # fmt: skip
        for field, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, field, value)
        self._validate()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TaskSpec is immutable: use _replace({name}=...)")

    def _asdict(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in _FIELDS}

    def _replace(self, **changes: object) -> TaskSpec:
        """A copy with ``changes``, validated again."""
        return TaskSpec(**{**self._asdict(), **changes})  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskSpec):
            return NotImplemented
        return all(getattr(self, field) == getattr(other, field) for field in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # env is a mapping: not hashable anyway

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in _FIELDS)
        return f"TaskSpec({shown})"

    def _validate(self) -> None:
        if not self.name:
            raise SpecError("task name must not be empty")
        if not self.argv or not self.argv[0]:
            raise SpecError(f"task {quote(self.name)}: empty command")
        for label, value in (
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("deadline", self.deadline),
            ("shutdown-timeout", self.shutdown_timeout),
        ):
            if value is not None and value <= 0:
                raise SpecError(f"--{label} must be > 0, got {format_duration(value)}")
        if self.breaker is not None and self.schedule is None and self.interval is None:
            raise SpecError(
                f"task {quote(self.name)}: --circuit-breaker is for --interval or --schedule tasks"
            )
        if self.schedule is not None and self.interval is not None:
            raise SpecError(f"task {quote(self.name)}: give --schedule or --interval, not both")
        if self.delay < 0 or self.kill_after < 0:
            raise SpecError("durations must not be negative")
        self._validate_strings()

    def _validate_strings(self) -> None:
        """What the kernel cannot take: NUL in any string, '=' or nothing as an env name."""
        task = f"task {quote(self.name)}"
        if "\0" in self.name:
            raise SpecError(f"task name {quote(self.name)} contains a NUL byte")
        for place, text in (
            *(("command", part) for part in self.argv),
            ("cwd", self.cwd or ""),
            ("shutdown hook", self.shutdown or ""),
            ("failure hook", self.on_failure or ""),
            ("state file", self.state_file or ""),
        ):
            if "\0" in text:
                raise SpecError(f"{task}: {place} {quote(text)} contains a NUL byte")
        for name, value in (*self.file_env.items(), *self.env.items()):
            if not name or "=" in name or "\0" in name:
                raise SpecError(f"{task}: invalid environment variable name {quote(name)}")
            if "\0" in value:
                raise SpecError(f"{task}: environment variable {name} contains a NUL byte")
