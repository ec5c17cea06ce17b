"""A task's complete, validated configuration: what ``exec`` and each group entry build."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.errors import SpecError


@dataclass(frozen=True)
class TaskSpec:
    """Durations are nanoseconds; ``None`` means "not set" (one-shot, no timeout, …)."""

    name: str
    argv: tuple[str, ...]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    interval: int | None = None
    delay: int = 0
    timeout: int | None = None
    deadline: int | None = None
    stop_signal: int = signal.SIGTERM
    kill_after: int = 10 * SECOND
    shutdown: str | None = None
    shutdown_timeout: int = 30 * SECOND
    foreground: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise SpecError("task name must not be empty")
        if not self.argv or not self.argv[0]:
            raise SpecError(f"task {self.name!r}: empty command")
        for label, value in (
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("deadline", self.deadline),
        ):
            if value is not None and value <= 0:
                raise SpecError(f"--{label} must be > 0, got {format_duration(value)}")
        if self.shutdown_timeout <= 0:
            raise SpecError("--shutdown-timeout must be > 0")
        if self.delay < 0 or self.kill_after < 0:
            raise SpecError("durations must not be negative")
