"""``exec`` at run time: one Task under a session, then the exit status or the signal."""

from __future__ import annotations

import sys

from longrun_cli.cli.render import LogRenderer
from longrun_cli.cli.session import run_session
from longrun_cli.engine.clock import MonotonicClock
from longrun_cli.engine.process import Supervisor, reraise
from longrun_cli.engine.task import StopControl, Task, TaskResult
from longrun_cli.policy.taskspec import TaskSpec


def run_exec(spec: TaskSpec, renderer: LogRenderer) -> int:
    async def work(supervisor: Supervisor, stop: StopControl) -> TaskResult:
        return await Task(spec, supervisor, MonotonicClock(), renderer, stop).run()

    result, stop_signal = run_session(work, renderer, forward_winch=not spec.foreground)
    if stop_signal is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        reraise(stop_signal)
        # Still here: PID 1 ignores its own default-action signals.
        return 128 + stop_signal
    return result.exit_status
