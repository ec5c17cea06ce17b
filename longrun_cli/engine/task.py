"""The task loop: one-shot or interval, retries with backoff, timeout, deadline, stop.

Decisions come from the pure policy; this module only sequences them in time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.attempt import DEADLINE, HALT, STOP, Attempts
from longrun_cli.engine.cadence import Cadence, next_after
from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.taskio import (
    EXEC_IO,
    FAILURES,
    StopControl,
    TaskIO,
    TaskResult,
    TaskStatus,
    finish_attempt,
    first_done,
    outcome_fields,
    random_sample,
    short_exit,
    span_decision,
)
from longrun_cli.policy.decision import Decision, Verdict
from longrun_cli.policy.duration import format_duration, to_seconds
from longrun_cli.policy.outcome import Outcome
from longrun_cli.policy.signals import signal_name
from longrun_cli.policy.status import EXIT_TIMEOUT, exit_status
from longrun_cli.policy.taskspec import TaskSpec
from longrun_cli.policy.tracker import Budgets
from longrun_cli.telemetry import NO_TASK

if TYPE_CHECKING:
    from datetime import datetime
    from typing import Literal

    from longrun_cli.engine.clock import Clock
    from longrun_cli.engine.events import EventSink
    from longrun_cli.engine.ping import Pinger
    from longrun_cli.engine.probing import AttemptProbes
    from longrun_cli.engine.statefile import StateKeeper
    from longrun_cli.engine.tail import StderrTail
    from longrun_cli.engine.taskio import Spawner
    from longrun_cli.telemetry import AttemptTrace, TaskTrace

    Interrupt = Literal["stop", "deadline", "halt"]


class Task(Cadence, Attempts):
    """Runs one TaskSpec to completion (Go's ``Task.Wait``)."""

    def __init__(
        self,
        spec: TaskSpec,
        spawner: Spawner,
        clock: Clock,
        sink: EventSink,
        stop: StopControl,
        *,
        uniform01: Callable[[], float] | None = None,
        environ: Mapping[str, str] = os.environ,
        io: TaskIO = EXEC_IO,
        trace: TaskTrace = NO_TASK,
        halt: asyncio.Future[None] | None = None,
        runs_before: int = 0,
        again: bool = False,
    ) -> None:
        self.spec = spec
        # Done when this task alone is to stop (ctl stop or restart): no failure.
        self._halt = halt
        self._io = io
        self._trace = trace
        self._attempt_trace: AttemptTrace | None = None
        self._attempt_pid: int | None = None
        self._spawner = spawner
        self._clock = clock
        self._sink = sink
        self._stop = stop
        self._uniform01 = uniform01 or random_sample
        # What this task adds to the shared environment: one small dict per task, not a
        # copy of the whole environment (2,000 tasks x 90 variables was 10 MiB).
        # A plain dict, read on every attempt: os.environ decodes each variable on every
        # read (0.2 ms an attempt). A group's runner passes one dict for all its tasks.
        self._environ = environ if isinstance(environ, dict) else dict(environ)
        self._env_overlay = {**spec.file_env, **spec.env, "LONGRUN_TASK": spec.name}
        self._deadline_at: float | None = None
        self._runs = runs_before
        self._again = again  # started again on request (longrun ctl): no initial delay
        self._streak = 0
        self._last_exit: str | None = None
        self._fired: datetime | None = None  # the schedule's fire time of the current run
        self._tail: StderrTail | None = None  # --on-failure: the last attempt's stderr
        self._pinger: Pinger | None = None  # --ping
        self._openings = 0  # --circuit-breaker: openings in a row
        self._trial = False  # the run after a cooldown: success closes, failure reopens
        self._probes: AttemptProbes | None = None  # --ready, --health: the running attempt's
        self._ready_announced = False
        self._state: StateKeeper | None = None  # --state-file

    @property
    def runs(self) -> int:
        """Runs so far, counting those of the Tasks this one follows (a restart)."""
        return self._runs

    @property
    def base_env(self) -> Mapping[str, str]:
        """The environment every process of this task starts from (before per-attempt keys)."""
        return {**self._environ, **self._env_overlay}

    def trace_event(self, name: str, **attributes: str | int | float) -> None:
        """A moment in the task's life on its span (the lock taken)."""
        self._trace.event(name, **attributes)

    async def run(self) -> TaskResult:
        """Run the task to its end; never raises for a failing command."""
        started = self._clock.now()
        if self.spec.deadline is not None:
            self._deadline_at = started + to_seconds(self.spec.deadline)
        if self.spec.ping:
            from longrun_cli.engine.ping import Pinger

            self._pinger = Pinger(
                self.spec.ping, lambda message: self._emit("ping", Level.WARNING, message)
            )
        result = await self._run_policy()
        if self._state is not None:
            await self._state.finish()
        if self._pinger is not None:
            if result.status in FAILURES:
                self._pinger.fail(self._tail.lines() if self._tail is not None else b"")
            await self._pinger.close()
        if result.status in FAILURES and self.spec.on_failure:
            await self._notify_failure(self.spec.on_failure, result)
        error = None
        if result.status in FAILURES:
            cause = result.outcome.describe() if result.outcome is not None else "deadline passed"
            error = f"{result.status.value}: {cause}"
        self._trace.finish(result.status.value, result.exit_status, error)
        return result

    async def _notify_failure(self, command: str, result: TaskResult) -> None:
        """--on-failure: once, with the failing attempt's stderr tail in a private file."""
        from longrun_cli.engine.hooks import hook_launch, notify_failure

        launch = hook_launch(
            command, result, self.base_env, self.spec.cwd, self._io,
            LONGRUN_ATTEMPTS=str(result.runs),
        )  # fmt: skip
        tail = self._tail.lines() if self._tail is not None else b""
        bound = to_seconds(self.spec.shutdown_timeout)
        await notify_failure(
            self._spawner, self._clock, self._stop.kill_now, launch, tail, bound, self._emit
        )

    async def run_hook(self, result: TaskResult, limit: float | None = None) -> None:
        """Run the shutdown hook, if any, bounded by its timeout and by ``limit`` seconds."""
        if self.spec.shutdown:
            # Imported here: most runs have no hook, and exec's start-up never needs it.
            from longrun_cli.engine.hooks import hook_launch, run_hook

            bound = to_seconds(self.spec.shutdown_timeout)
            if limit is not None:
                bound = min(bound, limit)
            launch = hook_launch(self.spec.shutdown, result, self.base_env, self.spec.cwd, self._io)
            kill_now = self._stop.kill_now
            await run_hook(self._spawner, self._clock, kill_now, launch, bound, self._emit)

    async def _run_policy(self) -> TaskResult:
        if self.spec.delay and not self._again:
            interrupt = await self._pause(to_seconds(self.spec.delay), "starting")
            if interrupt is not None:
                return self._interrupted(interrupt)
        if self.spec.schedule is not None:
            interrupt = await self._until_fire(None)
            if interrupt is not None:
                return self._interrupted(interrupt)
        budgets = Budgets.fresh(len(self.spec.policy.rules))
        if self.spec.state_file is not None:
            budgets, interrupt = await self._resume(self.spec.state_file)
            if interrupt is not None:
                return self._interrupted(interrupt)
        while True:
            outcome_or_end = await self._run_loop(budgets)
            if self.spec.breaker is not None and self._breaks(outcome_or_end):
                interrupt = await self._open_circuit()
                if interrupt is not None:
                    return self._interrupted(interrupt)
                budgets = Budgets.fresh(len(self.spec.policy.rules))
                continue
            if isinstance(outcome_or_end, TaskResult):
                return outcome_or_end
            decision, budgets = outcome_or_end
            interrupt = await self._pause(to_seconds(decision.delay), "backoff")
            if interrupt is not None:
                return self._interrupted(interrupt)

    async def _run_loop(self, budgets: Budgets) -> TaskResult | tuple[Decision, Budgets]:
        """Run now, then on the interval grid; return a result or a retry to wait for."""
        interval = to_seconds(self.spec.interval) if self.spec.interval else None
        next_tick = self._clock.now() + (interval or 0.0)
        while True:
            outcome = await self._attempt()
            if isinstance(outcome, str):
                return self._interrupted(outcome)
            self._last_exit = short_exit(outcome)
            sample = self._uniform01() if self.spec.policy.jitter else 0.0
            decision, budgets = self.spec.policy.decide(budgets, outcome, sample)
            if self._state is not None:
                self._state.record(decision, budgets)
            if decision.verdict is not Verdict.SUCCESS:
                ended = self._on_failure(outcome, decision, budgets)
                self._close_attempt(outcome, decision, ended)
                return ended
            if self._streak:  # after retries, success is news: say it at the default level
                self._emit(
                    "succeeded",
                    Level.INFO,
                    f"succeeded after {self._streak} {'retry' if self._streak == 1 else 'retries'}",
                    run=self._runs,
                )
            else:
                self._emit("succeeded", Level.DEBUG, "attempt succeeded", run=self._runs)
            self._streak = 0
            self._close_attempt(outcome, decision, None)
            if self._trial:
                self._trial, self._openings = False, 0
                self._emit("circuit-closed", Level.INFO, "circuit closed: the trial run succeeded")
                self._trace.event("circuit.closed")
            if self._pinger is not None:
                self._pinger.success()
            if self.spec.schedule is not None:
                interrupt = await self._until_fire(self._fired)
                if interrupt is not None:
                    return self._interrupted(interrupt)
                continue
            if interval is None:
                return TaskResult(TaskStatus.SUCCEEDED, 0, self._runs, outcome)
            now = self._clock.now()
            if now >= next_tick:
                # Like Go's time.Ticker: ticks missed while the command overran are
                # dropped, and the one buffered tick fires at once.
                missed = int((now - next_tick) // interval) + 1
                next_tick += missed * interval
                self._emit("tick-skipped", Level.DEBUG, "command overran its interval")
                continue
            interrupt = await self._pause(next_tick - now, "sleeping")
            if interrupt is not None:
                return self._interrupted(interrupt)
            next_tick = next_after(next_tick, interval, self._clock.now())

    async def _resume(self, path: str) -> tuple[Budgets, Interrupt | None]:
        """--state-file: the budgets a previous longrun left, and the rest of its backoff."""
        from longrun_cli.engine.statefile import StateKeeper

        self._state = StateKeeper(
            path,
            self.spec,
            lambda: self._clock.wall().timestamp(),
            lambda message: self._emit("state", Level.WARNING, message),
        )
        budgets, wait, message = await self._state.resume()
        if message is not None:
            self._streak = sum(budgets.spent)
            self._emit("state-resumed", Level.INFO, message)
        interrupt = await self._pause(wait, "backoff") if wait > 0 else None
        return budgets, interrupt

    def _on_failure(
        self, outcome: Outcome, decision: Decision, budgets: Budgets
    ) -> TaskResult | tuple[Decision, Budgets]:
        rule = self.spec.policy.rules[decision.rule] if decision.rule is not None else None
        rule_text = rule.matcher.describe() if rule else None  # JSON null, no text field
        self._emit(
            "attempt-failed",
            Level.WARNING,
            f"attempt failed: {outcome.describe()}",
            run=self._runs,
            **outcome_fields(outcome),
            rule=rule_text,
        )
        status = exit_status(outcome)
        if decision.verdict is Verdict.RETRY and not self._trial:
            assert rule is not None
            self._streak += 1
            budget = "inf" if rule.retries is None else str(rule.retries)
            if self._deadline_at is not None:
                remaining = self._deadline_at - self._clock.now()
                if to_seconds(decision.delay) >= remaining:
                    self._emit(
                        "deadline",
                        Level.ERROR,
                        "deadline leaves no time for the next retry",
                        delay=format_duration(decision.delay),
                    )
                    return TaskResult(TaskStatus.DEADLINE, EXIT_TIMEOUT, self._runs, outcome)
            self._emit(
                "retry",
                Level.INFO,
                f"retry in {format_duration(decision.delay)}",
                rule=rule_text,
                retry=f"{decision.attempt + 1}/{budget}",
                delay=format_duration(decision.delay),
            )
            return decision, budgets
        if decision.verdict is Verdict.EXHAUSTED:
            self._emit(
                "exhausted",
                Level.ERROR,
                "retries exhausted",
                rule=rule_text,
                retries=decision.attempt,
                exit_status=status,
            )
            return TaskResult(TaskStatus.EXHAUSTED, status, self._runs, outcome)
        why = "the circuit breaker's trial run failed" if self._trial else "permanent failure"
        self._emit("permanent", Level.ERROR, why, exit_status=status)
        return TaskResult(TaskStatus.FAILED, status, self._runs, outcome)

    def _close_attempt(
        self,
        outcome: Outcome,
        decision: Decision,
        ended: TaskResult | tuple[Decision, Budgets] | None,
    ) -> None:
        """End the invocation's span with what was decided about it (``ended``: _on_failure's)."""
        trace, self._attempt_trace = self._attempt_trace, None
        if trace is not None:
            retried = ended is not None and not isinstance(ended, TaskResult)
            status = ended.status if isinstance(ended, TaskResult) else None
            rule = decision.rule
            finish_attempt(
                trace,
                outcome,
                span_decision(outcome, status, retried=retried),
                rule=None if rule is None else self.spec.policy.rules[rule].matcher.describe(),
                delay=to_seconds(decision.delay) if retried else None,
                pid=self._attempt_pid,
            )

    def _abandon_attempt(self, label: str, error: str | None) -> None:
        trace, self._attempt_trace = self._attempt_trace, None
        if trace is not None:
            finish_attempt(trace, None, label, error=error, pid=self._attempt_pid)

    async def _pause(self, seconds: float, phase: str) -> Interrupt | None:
        """Sleep, cut short by a stop request or the deadline."""
        if self._stop.is_requested:
            return STOP
        if self._halt is not None and self._halt.done():
            return HALT
        limit, reason = self._limit(seconds)
        if seconds <= 0 and reason != "deadline":
            return None
        self._progress(phase, None, self._clock.now() + seconds)
        timer = asyncio.ensure_future(self._clock.sleep(limit or 0.0))
        contenders: list[asyncio.Future[Any]] = [self._stop.stop_waiter(), timer]
        if self._halt is not None:
            contenders.append(self._halt)
        try:
            await first_done(contenders)
        finally:
            timer.cancel()
        if self._stop.is_requested:
            return STOP
        if self._halt is not None and self._halt.done():
            return HALT
        if reason == "deadline":
            return DEADLINE
        return None

    def _interrupted(self, interrupt: Interrupt) -> TaskResult:
        if interrupt == DEADLINE:
            self._emit("deadline", Level.ERROR, "deadline passed")
            return TaskResult(TaskStatus.DEADLINE, EXIT_TIMEOUT, self._runs)
        if interrupt == HALT:
            self._emit("stopped", Level.INFO, f"stopped {self._io.halt_reason}")
            return TaskResult(TaskStatus.STOPPED, 0, self._runs)
        signum = self._stop.signal
        if signum is None:
            self._emit("stopped", Level.INFO, "stopped: another task failed")
            return TaskResult(TaskStatus.STOPPED, 0, self._runs)
        self._emit("stopped", Level.INFO, "stopped on request", signal=signal_name(signum))
        return TaskResult(TaskStatus.STOPPED, 128 + signum, self._runs)

    def _progress(self, phase: str, pid: int | None, next_at: float | None = None) -> None:
        if self._io.on_progress is not None:
            self._io.on_progress(phase, pid, self._runs, self._streak + 1, next_at, self._last_exit)

    def _emit(self, name: str, level: Level, message: str, **fields: object) -> None:
        ids = (self._attempt_trace or self._trace).log_ids()
        self._sink.emit(Event(name, self.spec.name, level, message, (*fields.items(), *ids)))
