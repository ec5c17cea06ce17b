"""The task loop in virtual time with scripted processes."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC

import pytest

from longrun_cli.engine.events import RecordingSink
from longrun_cli.engine.task import Task
from longrun_cli.engine.taskio import StopControl, TaskResult, TaskStatus
from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.spec import parse_exit_code_rule, parse_timeout_rule
from longrun_cli.policy.taskspec import TaskSpec
from tests.engine.fakes import FakeClock, FakeSpawner, Script


def spec(**overrides: object) -> TaskSpec:
    values: dict[str, object] = {"name": "job", "argv": ("job",)}
    values.update(overrides)
    return TaskSpec(**values)  # type: ignore[arg-type]


def rules(*exit_specs: str, timeout: str | None = None, jitter: float = 0.0) -> RetryPolicy:
    found = [rule for text in exit_specs for rule in parse_exit_code_rule(text)]
    if timeout is not None:
        found.append(parse_timeout_rule(timeout))
    return RetryPolicy.build(found, jitter=jitter)


def run(
    task_spec: TaskSpec,
    scripts: list[Script],
    *,
    stop_at: float | None = None,
    hook: Script | None = None,
    uniform01: float = 0.5,
    late_wakeups: dict[float, float] | None = None,
    stop_with: int = signal.SIGTERM,
) -> tuple[TaskResult, FakeSpawner, RecordingSink]:
    clock = FakeClock()
    clock.late_wakeups = dict(late_wakeups or {})
    spawner = FakeSpawner(clock, scripts, hook)
    sink = RecordingSink()

    async def main() -> TaskResult:
        stop = StopControl()
        task = Task(
            task_spec,
            spawner,
            clock,
            sink,
            stop,
            uniform01=lambda: uniform01,
            environ={"HOME": "/h"},
        )
        if stop_at is not None:

            async def stopper() -> None:
                await clock.sleep(stop_at)
                stop.request(stop_with)

            stopping = asyncio.ensure_future(stopper())
        result = await task.run()
        await task.run_hook(result)
        if stop_at is not None:
            stopping.cancel()
        return result

    return asyncio.run(main()), spawner, sink


def fail(code: int, duration: float = 0.0) -> Script:
    return Script(duration=duration, code=code)


def test_one_shot_success_runs_once_and_exits_zero():
    """A one-shot task that exits 0 succeeds after a single run."""
    result, spawner, _ = run(spec(), [Script()])
    assert (result.status, result.exit_status, result.runs) == (TaskStatus.SUCCEEDED, 0, 1)
    assert len(spawner.task_launches) == 1


def test_failure_without_rules_is_permanent_with_the_childs_code():
    """No rule matches → permanent failure carrying the child's exit code."""
    result, _, sink = run(spec(), [fail(7)])
    assert (result.status, result.exit_status) == (TaskStatus.FAILED, 7)
    assert "permanent" in sink.names()


def test_retries_follow_the_backoff_schedule_then_exhaust():
    """75:3:2s,60s,3 retries after 2s, 6s, 18s, then ends with the child's code."""
    result, spawner, sink = run(spec(policy=rules("75:3:2s,60s,3")), [fail(75)] * 10)
    assert spawner.task_start_times == [0, 2, 8, 26]
    assert (result.status, result.exit_status, result.runs) == (TaskStatus.EXHAUSTED, 75, 4)
    assert sink.names().count("retry") == 3


def test_each_rule_has_its_own_budget():
    """Failures of one code never spend another code's budget (TransientGroup)."""
    scripts = [fail(75), fail(76), fail(75), fail(76), Script()]
    result, _, _ = run(spec(policy=rules("75-76:2:1s")), scripts)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.runs == 5


def test_one_shot_budget_is_not_reset_between_failures_of_different_rules():
    """In a one-shot task, 75 then 76 then 75 again counts 75's second failure."""
    scripts = [fail(75), fail(76), fail(75)]
    result, _, _ = run(spec(policy=rules("75-76:1:1s")), scripts)
    assert (result.status, result.exit_status, result.runs) == (TaskStatus.EXHAUSTED, 75, 3)


def test_backoff_attempt_restarts_within_each_rule():
    """Delays grow per rule: 75 (1s), 76 (1s), 75 (2s)."""
    scripts = [fail(75), fail(76), fail(75), Script()]
    _, spawner, _ = run(spec(policy=rules("75-76:5:1s")), scripts)
    assert spawner.task_start_times == [0, 1, 2, 4]


def test_interval_success_resets_every_budget():
    """Failures separated by successful ticks never add up to exhaustion."""
    scripts = [fail(75), Script()] * 4 + [fail(1)]
    result, _, _ = run(spec(interval=10 * SECOND, policy=rules("75:1:1s")), scripts)
    assert result.status is TaskStatus.FAILED
    assert result.runs == 9


def test_interval_ticks_on_a_fixed_grid_without_drift():
    """Runs that take 0.3s still start at 0, 1, 2, 3 with a 1s interval."""
    scripts = [Script(duration=0.3)] * 4 + [fail(1)]
    _, spawner, _ = run(spec(interval=SECOND), scripts)
    assert spawner.task_start_times == pytest.approx([0, 1, 2, 3, 4])


def test_overrun_skips_missed_ticks_with_one_catch_up_run():
    """A 2.5s run on a 1s grid is followed at once by one run, then the grid (3s)."""
    scripts = [Script(duration=2.5), Script(duration=0.1), Script(), fail(1)]
    _, spawner, _ = run(spec(interval=SECOND), scripts)
    assert spawner.task_start_times == pytest.approx([0, 2.5, 3, 4])


def test_a_late_wake_up_runs_once_then_keeps_the_grid():
    """Woken 5s late for the 3s tick (longrun was suspended): one run at 8s, the next at 9s."""
    scripts = [Script(duration=0.1)] * 4 + [fail(1)]
    _, spawner, _ = run(spec(interval=SECOND), scripts, late_wakeups={3.0: 5.0})
    assert spawner.task_start_times == pytest.approx([0, 1, 2, 8, 9])


def test_retry_restarts_the_interval_schedule():
    """After a retry at 1s (backoff), the next tick is one full interval later (11s)."""
    scripts = [fail(75), Script(), fail(1)]
    _, spawner, _ = run(spec(interval=10 * SECOND, policy=rules("75:3:1s")), scripts)
    assert spawner.task_start_times == [0, 1, 11]


def test_delay_applies_once_before_the_first_run_only():
    """--delay 5s: first run at 5s; the retry waits only its backoff."""
    scripts = [fail(75), Script()]
    _, spawner, _ = run(spec(delay=5 * SECOND, policy=rules("75:3:1s")), scripts)
    assert spawner.task_start_times == [5, 6]


def test_stop_during_delay_ends_cleanly_without_running():
    """A stop request during --delay ends the task without starting the command."""
    result, spawner, _ = run(spec(delay=60 * SECOND), [Script()], stop_at=1.0)
    assert result.status is TaskStatus.STOPPED
    assert spawner.task_launches == []


def test_stop_during_an_attempt_sends_the_stop_signal():
    """Stop while the command runs: it receives --stop-signal and the task is stopped."""
    result, spawner, _ = run(spec(stop_signal=signal.SIGINT), [Script(duration=100)], stop_at=3.0)
    assert result.status is TaskStatus.STOPPED
    assert spawner.children[0].stopped_with == [signal.SIGINT]


def test_stop_during_backoff_does_not_retry():
    """A stop request while waiting for a retry ends the task at once."""
    result, spawner, _ = run(spec(policy=rules("75:3:10s")), [fail(75)] * 3, stop_at=5.0)
    assert result.status is TaskStatus.STOPPED
    assert len(spawner.task_launches) == 1


def test_timeout_is_a_failure_exiting_124_without_a_rule():
    """An attempt over --timeout is stopped and, with no timeout rule, ends with 124."""
    result, spawner, _ = run(spec(timeout=SECOND), [Script(duration=50)])
    assert (result.status, result.exit_status) == (TaskStatus.FAILED, 124)
    assert spawner.children[0].stopped_with == [signal.SIGTERM]


def test_timeout_rule_retries_timed_out_attempts():
    """--retry-timeout makes timeouts transient: retried with its own backoff."""
    scripts = [Script(duration=50), Script(duration=50), Script()]
    result, spawner, _ = run(spec(timeout=SECOND, policy=rules(timeout="2:500ms")), scripts)
    assert result.status is TaskStatus.SUCCEEDED
    assert spawner.task_start_times == pytest.approx([0, 1.5, 3.5])


def test_exit_code_rule_does_not_match_a_timed_out_attempt():
    """A timed-out attempt is of kind timeout, even if it exits with a retried code."""
    result, _, _ = run(spec(timeout=SECOND, policy=rules("75")), [Script(duration=9, code=75)])
    assert result.exit_status == 124


def test_deadline_stops_the_running_attempt_with_124():
    """--deadline passing mid-attempt stops the command and ends with 124."""
    result, spawner, _ = run(spec(deadline=5 * SECOND), [Script(duration=60)])
    assert (result.status, result.exit_status) == (TaskStatus.DEADLINE, 124)
    assert spawner.children[0].stopped_with == [signal.SIGTERM]


def test_deadline_ends_early_when_the_backoff_would_overrun_it():
    """A retry that could only start after the deadline is not waited for: exit 124 now."""
    result, spawner, _ = run(spec(deadline=5 * SECOND, policy=rules("75:3:10s")), [fail(75)])
    assert (result.status, result.exit_status) == (TaskStatus.DEADLINE, 124)
    assert len(spawner.task_launches) == 1


def test_deadline_covers_attempts_and_backoffs():
    """With 2s backoffs and a 5s deadline, the third attempt is cut at 5s."""
    scripts = [fail(75), fail(75), Script(duration=60)]
    result, spawner, _ = run(spec(deadline=5 * SECOND, policy=rules("75:9:2s,2s,1")), scripts)
    assert spawner.task_start_times == [0, 2, 4]
    assert result.exit_status == 124


def test_child_environment_carries_task_attempt_and_run():
    """LONGRUN_ATTEMPT counts within a failure streak; LONGRUN_RUN counts every run."""
    scripts = [fail(75), fail(75), Script(), fail(75), Script(), fail(1)]
    _, spawner, _ = run(spec(interval=10 * SECOND, policy=rules("75:5:1s")), scripts)
    envs = [(s.env["LONGRUN_ATTEMPT"], s.env["LONGRUN_RUN"]) for s in spawner.task_launches]
    assert envs == [("1", "1"), ("2", "2"), ("3", "3"), ("1", "4"), ("2", "5"), ("1", "6")]
    assert all(s.env["LONGRUN_TASK"] == "job" and s.env["HOME"] == "/h" for s in spawner.launches)


def test_jitter_draws_from_the_injected_random_source():
    """--jitter 0.5 with a sample of 0 halves the delay: [d/2, d]."""
    scripts = [fail(75), Script()]
    _, spawner, _ = run(spec(policy=rules("75:3:4s", jitter=0.5)), scripts, uniform01=0.0)
    assert spawner.task_start_times == [0, 2]


def test_spawn_failure_is_permanent_with_127():
    """A command that cannot start ends with 127 even if a rule would match that code."""
    result, _, _ = run(spec(policy=rules("127")), [Script(spawn_error=127)])
    assert (result.status, result.exit_status) == (TaskStatus.FAILED, 127)


def test_killed_by_signal_exits_128_plus_n():
    """An attempt killed by a signal longrun did not send ends with 128+N."""
    result, _, _ = run(spec(), [Script(code=None, signal=signal.SIGKILL)])
    assert result.exit_status == 128 + signal.SIGKILL


def test_shutdown_hook_runs_after_the_task_with_its_result():
    """The hook runs once the task has ended and sees LONGRUN_EXIT_STATUS."""
    result, spawner, _ = run(spec(shutdown="echo bye"), [fail(3, duration=2)])
    hook = spawner.launches[-1]
    assert hook.argv == ("/bin/sh", "-c", "echo bye")
    assert hook.env["LONGRUN_EXIT_STATUS"] == "3"
    assert spawner.start_times[-1] == 2
    assert result.exit_status == 3


def test_hanging_hook_is_cut_at_the_shutdown_timeout():
    """A hook that hangs is killed at --shutdown-timeout and logged; the status stays."""
    result, spawner, sink = run(
        spec(shutdown="sleep 1000", shutdown_timeout=3 * SECOND),
        [Script()],
        hook=Script(duration=1000),
    )
    assert result.exit_status == 0
    assert spawner.children[-1].stopped_with == [signal.SIGKILL]
    assert "hook-failed" in sink.names()


def test_failing_hook_is_logged_and_does_not_change_the_status():
    """A hook exiting non-zero is reported; the task's exit status is kept."""
    result, _, sink = run(spec(shutdown="false"), [fail(4)], hook=Script(code=1))
    assert result.exit_status == 4
    assert "hook-failed" in sink.names()


def test_success_exit_codes_count_as_success():
    """--success-exit-code 3 makes exit 3 a success."""
    policy = RetryPolicy.build([], frozenset({3}))
    result, _, _ = run(spec(policy=policy), [fail(3)])
    assert (result.status, result.exit_status) == (TaskStatus.SUCCEEDED, 0)


def test_unlimited_retries_keep_going():
    """inf retries: 50 failures in a row are all retried."""
    result, _, _ = run(spec(policy=rules("75:inf:1ms")), [fail(75)] * 50 + [Script()])
    assert (result.status, result.runs) == (TaskStatus.SUCCEEDED, 51)


def test_success_after_retries_is_said_at_the_default_level():
    """Exit 75 once, then 0: "succeeded after 1 retry" at INFO (a first-try success stays DEBUG)."""
    from longrun_cli.engine.events import Level

    _, _, sink = run(spec(policy=rules("75:3:1s")), [fail(75), Script()])
    (event,) = [e for e in sink.events if e.name == "succeeded"]
    assert (event.level, event.message) == (Level.INFO, "succeeded after 1 retry")


def test_ctrl_c_under_foreground_is_a_stop_even_when_the_command_is_reaped_first():
    """The command dies of the terminal's INT at 1s, longrun's own INT lands at 1.05s: stopped."""
    scripts = [Script(duration=1.0, code=None, signal=signal.SIGINT)]
    result, _, _ = run(spec(foreground=True), scripts, stop_at=1.05, stop_with=signal.SIGINT)
    assert result.status is TaskStatus.STOPPED


def test_an_int_without_a_stop_is_still_the_commands_failure():
    """Died of INT with no stop request to longrun (someone else's kill): a failure, after 0.2s."""
    scripts = [Script(duration=1.0, code=None, signal=signal.SIGINT)]
    result, _, _ = run(spec(foreground=True), scripts)
    assert (result.status, result.exit_status) == (TaskStatus.FAILED, 128 + signal.SIGINT)


def test_a_schedule_runs_at_fire_times_and_skips_those_a_run_outlasts():
    """*/5: first run at 00:05; it runs 7 min, so 00:10 is skipped (no overlap), next 00:15."""

    from longrun_cli.policy.schedule import parse_schedule

    schedule = parse_schedule("*/5 * * * *", None, UTC)
    scripts = [Script(duration=420), Script(duration=60), Script(duration=60)]
    result, spawner, sink = run(spec(schedule=schedule), scripts, stop_at=1290.0)
    assert spawner.task_start_times == [300.0, 900.0, 1200.0]
    skipped = [e for e in sink.events if e.name == "schedule-skipped"]
    assert [e.message for e in skipped] == ["skipped 1 fire time: the run was still going"]
    assert dict(skipped[0].fields)["first"] == "2026-01-01T00:10:00+00:00"
    assert result.status is TaskStatus.STOPPED


def test_a_scheduled_retry_runs_after_its_backoff_not_at_the_next_fire_time():

    from longrun_cli.policy.schedule import parse_schedule

    schedule = parse_schedule("@hourly", None, UTC)
    scripts = [fail(75), Script(duration=1), Script(duration=1)]
    result, spawner, _ = run(
        spec(schedule=schedule, policy=rules("75:3:10s")), scripts, stop_at=7300.0
    )
    assert spawner.task_start_times == [3600.0, 3610.0, 7200.0]
    assert result.status is TaskStatus.STOPPED


@pytest.mark.parametrize(
    ("jump", "first_run"),
    [
        (-1800.0, 5400.0),  # the clock set back 30 min while waiting: wait the rest, on time
        (+7200.0, 3600.0),  # set forward 2 h: the fire time has passed: run once, at wake-up
    ],
)
def test_a_schedule_survives_the_civil_clock_being_set_while_it_waits(jump, first_run):
    from datetime import timedelta

    from longrun_cli.policy.schedule import parse_schedule

    schedule = parse_schedule("@hourly", None, UTC)
    clock = FakeClock()
    spawner = FakeSpawner(clock, [Script(duration=1)] * 3)

    async def main() -> None:
        stop = StopControl()
        task = Task(spec(schedule=schedule), spawner, clock, RecordingSink(), stop, environ={})

        async def set_clock() -> None:
            await clock.sleep(1000)
            clock.start += timedelta(seconds=jump)

        async def stop_later() -> None:
            await clock.sleep(first_run + 10)
            stop.request(signal.SIGTERM)

        helpers = [asyncio.ensure_future(set_clock()), asyncio.ensure_future(stop_later())]
        await task.run()
        for helper in helpers:
            helper.cancel()

    asyncio.run(main())
    assert spawner.task_start_times == [first_run]


def test_the_circuit_opens_where_the_task_would_end_and_a_trial_closes_it():
    """interval 10s, no rules: fail at 0 -> open 30s -> trial at 30 fails -> open 60s ->
    trial at 90 succeeds -> closed, runs go on at the interval."""
    from longrun_cli.policy.breaker import parse_breaker

    scripts = [fail(1), fail(1), Script(duration=1), Script(duration=1)]
    result, spawner, sink = run(
        spec(interval=10 * SECOND, breaker=parse_breaker("30s,1m")), scripts, stop_at=105.0
    )
    assert spawner.task_start_times == [0.0, 30.0, 90.0, 100.0]
    names = [e.name for e in sink.events if e.name.startswith("circuit")]
    assert names == ["circuit-open", "circuit-half-open", "circuit-open", "circuit-half-open",
                     "circuit-closed"]  # fmt: skip
    opens = [e.message for e in sink.events if e.name == "circuit-open"]
    assert opens == ["circuit open for 30s", "circuit open for 1m0s"]
    assert result.status is TaskStatus.STOPPED


def test_a_trial_gets_no_retries_and_budgets_start_over_after_closing():
    from longrun_cli.policy.breaker import parse_breaker

    policy = rules("75:1:1s")
    scripts = [fail(75), fail(75), fail(75), Script(duration=1), fail(75), Script(duration=1)]
    _, spawner, _ = run(
        spec(interval=100 * SECOND, policy=policy, breaker=parse_breaker("20s,20s")),
        scripts,
        stop_at=150.0,
    )
    # 0 fails, retried at 1 (budget 1), fails: exhausted -> open 20s; trial at 21 fails:
    # no retry, reopen 20s (capped); trial at 41 succeeds; the interval grid restarted with
    # the trial; 141 fails and is retried at 142: the budget started over.
    assert spawner.task_start_times == [0.0, 1.0, 21.0, 41.0, 141.0, 142.0]


def test_breaker_values_and_its_scope_are_checked():
    from longrun_cli.policy.breaker import Breaker, parse_breaker
    from longrun_cli.policy.duration import HOUR, MINUTE
    from longrun_cli.policy.errors import SpecError

    assert parse_breaker("30s") == Breaker(30 * SECOND, HOUR)
    assert parse_breaker("1m,10m").cooldown_after(5) == 10 * MINUTE
    assert [parse_breaker("1s,5s").cooldown_after(n) for n in (1, 2, 3, 4)] == [
        SECOND, 2 * SECOND, 4 * SECOND, 5 * SECOND,
    ]  # fmt: skip
    for bad in ("0s", "2m,1m", "soon", "1m,"):
        with pytest.raises(SpecError, match="--circuit-breaker"):
            parse_breaker(bad)
    with pytest.raises(SpecError, match="for --interval or --schedule tasks"):
        spec(breaker=parse_breaker("1s"))


def test_a_full_disk_costs_the_stderr_tail_not_the_failure_notification(monkeypatch):
    """mkstemp or the write failing (ENOSPC): a warning, the hook runs, no exception."""
    import errno
    import tempfile

    def full(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    result, spawner, sink = run(spec(on_failure="notify"), [fail(3)])
    assert result.status is TaskStatus.FAILED
    hooks = [s for s in spawner.launches if s.argv == ("/bin/sh", "-c", "notify")]
    assert len(hooks) == 1
    assert hooks[0].env["LONGRUN_STDERR_TAIL_FILE"] == ""
    assert [e.message for e in sink.events if e.name == "hook-tail"] == [
        "stderr tail not saved: No space left on device"
    ]


def test_each_wait_for_a_stop_has_a_future_of_its_own():
    """Attempts and pauses wait on futures of their own, all set by a stop request, so
    the shared future never holds a list as long as the group (each attempt that ended
    without a stop removed its callback from that list: quadratic in a large group)."""

    async def main() -> None:
        stop = StopControl()
        waiting = [stop.stop_waiter() for _ in range(2000)]
        racing = [
            asyncio.ensure_future(asyncio.wait([w], return_when=asyncio.FIRST_COMPLETED))
            for w in waiting
        ]
        await asyncio.sleep(0)
        assert not stop.requested._callbacks  # type: ignore[attr-defined]
        assert not any(w.done() for w in waiting)
        stop.request(signal.SIGTERM)
        await asyncio.gather(*racing)
        assert all(w.done() for w in waiting)
        assert stop.stop_waiter().done()  # after the request: set at once
        assert not stop.kill_waiter().done()
        stop.request(signal.SIGTERM)
        assert stop.kill_waiter().done()

    asyncio.run(main())


def test_first_done_returns_on_the_first_future_or_the_timeout_and_leaves_no_callback():
    from longrun_cli.engine.taskio import first_done

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        waiting = asyncio.ensure_future(first_done([first, second]))
        await asyncio.sleep(0)
        assert not waiting.done()
        second.set_result(None)
        await waiting
        assert not first._callbacks  # type: ignore[attr-defined]  # removed again
        began = loop.time()
        await first_done([first], timeout=0.05)  # never done: the timeout
        assert loop.time() - began >= 0.04
        assert not first._callbacks  # type: ignore[attr-defined]
        await first_done([first, second])  # one already done: at once
        cancelled = asyncio.ensure_future(first_done([first]))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not first._callbacks  # type: ignore[attr-defined]

    asyncio.run(main())
