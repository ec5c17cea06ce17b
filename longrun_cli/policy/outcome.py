"""What one attempt did, as the policy sees it."""

from __future__ import annotations

from typing import NamedTuple


class Outcome(NamedTuple):
    """The observable result of one invocation of the command.

    ``signal`` is set only for a signal longrun did not send itself (e.g. KILL from
    the OOM killer); an attempt longrun stopped for its timeout has ``timed_out``.
    ``stderr_hits`` holds the stderr patterns seen in this attempt's output.
    ``spawn_error`` marks a command that could not be started (exit 126 or 127).
    ``unhealthy`` says why longrun stopped an attempt its liveness probe failed.
    """

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    stderr_hits: frozenset[str] = frozenset()
    spawn_error: str | None = None
    unhealthy: str | None = None

    def describe(self) -> str:
        if self.spawn_error:
            return self.spawn_error
        if self.timed_out:
            return "timed out"
        if self.unhealthy is not None:
            return f"unhealthy: {self.unhealthy}"
        if self.signal is not None:
            from longrun_cli.policy.signals import signal_name

            return f"killed by signal {signal_name(self.signal)}"
        return f"exit {self.exit_code}"
