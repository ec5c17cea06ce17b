"""One attempt of a task: spawn the command, race it against its limits, classify the end.

A mixin of ``Task`` (the loop decides what to do with the outcome); it reaches the
task's state through the attributes declared below.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from longrun_cli.engine.events import Level
from longrun_cli.engine.launch import LaunchSpec, SpawnError
from longrun_cli.engine.taskio import first_done, outcome_of
from longrun_cli.policy.duration import to_seconds
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.signals import signal_name

if TYPE_CHECKING:
    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.launch import ExitStatus
    from longrun_cli.engine.ping import Pinger
    from longrun_cli.engine.probing import AttemptProbes
    from longrun_cli.engine.tail import StderrTail
    from longrun_cli.engine.task import Interrupt
    from longrun_cli.engine.taskio import ChildProcess, Spawner, StopControl, TaskIO
    from longrun_cli.policy.taskspec import TaskSpec
    from longrun_cli.telemetry import AttemptTrace, TaskTrace

# Why a wait ended before the command or the pause did: plain strings rather than an
# Enum, whose class costs exec's start-up ~0.3 M instructions to build.
STOP: Final = "stop"  # longrun was asked to stop (a signal), or another task of the group failed
DEADLINE: Final = "deadline"
HALT: Final = "halt"  # this task alone, on request (longrun ctl stop or restart)


class Attempts:
    spec: TaskSpec
    _clock: Clock
    _trace: TaskTrace
    _attempt_trace: AttemptTrace | None
    _attempt_pid: int | None
    _environ: Mapping[str, str]
    _env_overlay: dict[str, str]
    _io: TaskIO
    _spawner: Spawner
    _stop: StopControl
    _halt: asyncio.Future[None] | None
    _tail: StderrTail | None
    _pinger: Pinger | None
    _runs: int
    _streak: int
    _deadline_at: float | None
    _probes: AttemptProbes | None
    _ready_announced: bool

    if TYPE_CHECKING:  # provided by Task

        def _emit(self, name: str, level: Level, message: str, **fields: object) -> None: ...

        def _progress(self, phase: str, pid: int | None, next_at: float | None = None) -> None: ...

        def _abandon_attempt(self, label: str, error: str | None) -> None: ...

        @property
        def base_env(self) -> Mapping[str, str]: ...

    async def _attempt(self) -> Outcome | Interrupt:
        if self._io.gate is not None and not self._io.gate():
            return HALT  # --lock: not certainly held any more; nothing may start
        self._runs += 1
        attempt = self._streak + 1
        self._attempt_trace = self._trace.attempt(self._runs, attempt, self.spec.argv)
        self._attempt_pid = None
        env = {**self._environ, **self._env_overlay, **self._attempt_trace.child_env()}
        env["LONGRUN_ATTEMPT"] = str(attempt)
        env["LONGRUN_RUN"] = str(self._runs)
        if self.spec.on_failure or self.spec.ping:
            from longrun_cli.engine.tail import StderrTail

            self._tail = StderrTail()
        probes = self._probes = self._new_probes()
        launch = self._launch(env, probes)
        try:
            child = self._spawner.spawn(launch)
        except SpawnError as exc:
            self._probes = None
            return Outcome(exit_code=exc.status, spawn_error=str(exc))
        # Not kept for the attempt's life: a group of 2,000 running tasks would hold
        # 2,000 copies of the environment.
        del env, launch
        self._attempt_pid = child.pid
        self._progress("running", child.pid)
        if self._pinger is not None:
            self._pinger.start()
        if self._io.on_started is not None:
            self._io.on_started()
        self._emit(
            "start", Level.DEBUG, "attempt started", run=self._runs, attempt=attempt, pid=child.pid
        )
        timeout = to_seconds(self.spec.timeout) if self.spec.timeout else None
        if probes is not None:
            probes.start()
        try:
            reason = await self._race(child.exited, timeout)
        finally:
            self._probes = None
            if probes is not None:
                probes.cancel()
        if reason is None:
            status = await child.wait()
            if status.output_held:
                self._emit_output_held()
            if await self._terminal_stopped_us(status):
                self._abandon_attempt("stopped", None)
                return STOP
            return outcome_of(status)
        return await self._stop_attempt(child, reason, probes)

    async def _stop_attempt(
        self, child: ChildProcess, reason: str, probes: AttemptProbes | None
    ) -> Outcome | Interrupt:
        """Stop the command for ``reason`` (gracefully, then KILL) and say what it was."""
        # A requested stop (a signal, or another task of the group failing) is not
        # an error of this task: -q must stay quiet on `systemctl stop`.
        levels = {"timeout": Level.WARNING, "deadline": Level.ERROR, "unhealthy": Level.ERROR}
        event = "stop" if reason == "halt" else reason
        detail = f"{event}: sending {signal_name(self.spec.stop_signal)}"
        if reason == "unhealthy" and probes is not None:
            detail = f"unhealthy: {probes.unhealthy.result()}; sending "
            detail += signal_name(self.spec.stop_signal)
        self._emit(event, levels.get(reason, Level.INFO), detail, pid=child.pid)
        killed = await child.stop(
            self.spec.stop_signal, to_seconds(self.spec.kill_after), self._stop.kill_waiter()
        )
        if killed:
            how = (
                "at once (second signal)"
                if self._stop.kill_now.done()
                else "after the grace period"
            )
            self._emit("killed", Level.WARNING, f"sent KILL {how}", pid=child.pid)
        status = await child.wait()
        if reason == "timeout":
            return Outcome(exit_code=status.code, timed_out=True, stderr_hits=status.stderr_hits)
        if reason == "unhealthy" and probes is not None:
            # Its own status after the stop: 143 for a command the TERM killed.
            code = status.code
            if code is None and status.signal is not None:
                code = 128 + status.signal
            return Outcome(
                exit_code=code,
                stderr_hits=status.stderr_hits,
                unhealthy=probes.unhealthy.result(),
            )
        if reason == "deadline":
            self._abandon_attempt("timeout", "deadline passed")
            return DEADLINE
        self._abandon_attempt("stopped", None)
        return HALT if reason == "halt" else STOP

    def _launch(self, env: dict[str, str], probes: AttemptProbes | None) -> LaunchSpec:
        stdout_patterns = self._io.stdout_patterns
        stderr_ready = self._io.stderr_ready_patterns
        heartbeats: frozenset[str] = frozenset()
        if probes is not None:
            stdout_patterns = _union(stdout_patterns, probes.patterns("stdout"))
            stderr_ready = _union(stderr_ready, probes.patterns("stderr"))
            heartbeats = probes.heartbeats
        return LaunchSpec(
            argv=self.spec.argv,
            env=env,
            cwd=self.spec.cwd,
            own_group=not self.spec.foreground,
            stderr_patterns=_union(self.spec.policy.stderr_patterns, stderr_ready),
            on_stderr_match=self._on_stderr_match if stderr_ready else None,
            stop_signal=self.spec.stop_signal,
            kill_after=to_seconds(self.spec.kill_after),
            output_prefix=self._io.output_prefix,
            output_stamp=self._io.output_stamp,
            log=self._io.log,
            stdout_patterns=stdout_patterns,
            on_stdout_match=self._on_stdout_match if probes else self._io.on_ready_match,
            stdin_null=self._io.stdin_null,
            stderr_tail=self._tail,
            repeated_patterns=heartbeats,
            pass_fds=self._io.pass_fds,
        )

    def _new_probes(self) -> AttemptProbes | None:
        if self.spec.ready is None and self.spec.health is None:
            return None
        # Imported only by tasks with probes: exec's start-up never needs them.
        from longrun_cli.engine.probing import AttemptProbes
        from longrun_cli.engine.readiness import Prober

        prober = Prober(self._spawner, self._clock, self._stop.kill_now)
        return AttemptProbes(self, prober, self._clock, self._emit, self._attempt_ready)  # type: ignore[arg-type]

    def _attempt_ready(self) -> None:
        ready = self.spec.ready
        what = ready.what() if ready is not None else "started"
        # Every attempt proves it again (liveness waits for it); systemd hears READY=1 once.
        level = Level.DEBUG if self._ready_announced else Level.INFO
        self._ready_announced = True
        self._emit("ready", level, f"ready: {what}", run=self._runs)

    async def _terminal_stopped_us(self, status: ExitStatus) -> bool:
        """Ctrl-C under --foreground: the terminal signalled the command and longrun alike.

        The command may be reaped before longrun's own handler has run; give that
        handler a moment, so the run ends "stopped on request", not as a failure.
        """
        if not self.spec.foreground or status.signal not in _TERMINAL_SIGNALS:
            return False
        if not self._stop.is_requested:
            pause = asyncio.ensure_future(self._clock.sleep(_TERMINAL_PATIENCE))
            try:
                await asyncio.wait(
                    [self._stop.requested, pause], return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                pause.cancel()
        return self._stop.signal == status.signal

    async def _race(self, exited: asyncio.Future[int], timeout: float | None) -> str | None:
        """Wait for the command to exit; name what came first if it was not the command."""
        limit, reason = self._limit(timeout)
        contenders: list[asyncio.Future[Any]] = [exited, self._stop.stop_waiter()]
        if self._halt is not None:
            contenders.append(self._halt)
        if self._probes is not None:
            contenders.append(self._probes.unhealthy)
        timer = asyncio.ensure_future(self._clock.sleep(limit)) if limit is not None else None
        if timer is not None:
            contenders.append(timer)
        try:
            await first_done(contenders)
        finally:
            if timer is not None:
                timer.cancel()
        if exited.done():
            return None
        if self._stop.is_requested:
            return "stop"
        if self._halt is not None and self._halt.done():
            return "halt"
        if self._probes is not None and self._probes.unhealthy.done():
            return "unhealthy"
        return reason

    def _limit(self, timeout: float | None) -> tuple[float | None, str]:
        """The nearer of the attempt's timeout and the task's deadline."""
        if self._deadline_at is None:
            return timeout, "timeout"
        remaining = max(0.0, self._deadline_at - self._clock.now())
        if timeout is not None and timeout < remaining:
            return timeout, "timeout"
        return remaining, "deadline"

    def _emit_output_held(self) -> None:
        self._emit(
            "output-held",
            Level.WARNING,
            "a process that left the command's process group keeps its output open; "
            "not waiting for it (it is stopped when longrun ends)",
        )

    def _on_stdout_match(self, pattern: str) -> None:
        if pattern in self._io.stdout_patterns and self._io.on_ready_match is not None:
            self._io.on_ready_match(pattern)
        if self._probes is not None:
            self._probes.matched(pattern)

    def _on_stderr_match(self, pattern: str) -> None:
        # The stderr watch reports retry rules' patterns too: readiness wants its own.
        if pattern in self._io.stderr_ready_patterns and self._io.on_ready_match is not None:
            self._io.on_ready_match(pattern)
        if self._probes is not None:
            self._probes.matched(pattern)


# Signals a terminal sends its foreground group (Ctrl-C, Ctrl-\\), and how long
# longrun waits for its own copy after the command died of one.
_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
_TERMINAL_PATIENCE = 0.2


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(pattern for pattern in second if pattern not in first)
