"""The runner in virtual time with scripted processes."""

from __future__ import annotations

import asyncio
import signal

from longrun_cli.engine.events import RecordingSink
from longrun_cli.engine.runner import Runner, RunnerResult
from longrun_cli.engine.taskio import StopControl, TaskStatus
from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.group import Condition, GroupSpec, GroupTask, ReadyProbe
from longrun_cli.policy.taskspec import TaskSpec
from tests.engine.fakes import FakeClock, GroupSpawner, Script

FOREVER = 10_000.0


def gtask(name, *deps, shutdown="hook", ready=None, interval=None, **spec):
    task_spec = TaskSpec(name=name, argv=(name,), shutdown=shutdown, interval=interval, **spec)
    return GroupTask(task_spec, tuple(deps), ready)


def run_group(
    tasks, scripts, *, hooks=None, probes=None, stop_at=None, shutdown_timeout=30 * SECOND
):
    clock = FakeClock()
    spawner = GroupSpawner(clock, scripts, hooks, probes)
    sink = RecordingSink()

    async def main() -> RunnerResult:
        stop = StopControl()
        runner = Runner(
            GroupSpec(tuple(tasks), shutdown_timeout), spawner, clock, sink, stop, environ={}
        )
        stopper = None
        if stop_at is not None:

            async def stop_later() -> None:
                await clock.sleep(stop_at)
                stop.request(signal.SIGTERM)

            stopper = asyncio.ensure_future(stop_later())
        result = await runner.run()
        if stopper is not None:
            stopper.cancel()
        return result

    return asyncio.run(main()), spawner, sink, clock


def test_first_permanent_failure_stops_the_others_then_hooks_run_lifo():
    """b fails at 2s: a and c are stopped, then hooks run c, b, a — after everything ended."""
    tasks = [gtask("a"), gtask("b"), gtask("c")]
    scripts = {
        "a": [Script(duration=FOREVER)],
        "b": [Script(duration=2, code=4)],
        "c": [Script(duration=FOREVER)],
    }
    result, spawner, _, _ = run_group(tasks, scripts)
    assert (result.exit_status, result.first_failure) == (4, "b")
    assert result.results["a"].status is TaskStatus.STOPPED
    assert spawner.started("hook") == ["c", "b", "a"]
    hook_times = [t for t, kind, _ in spawner.timeline if kind == "hook"]
    assert min(hook_times) == 2


def test_a_task_that_succeeds_does_not_stop_the_others():
    """One-shot a exits 0 at 1s; b keeps running until it fails at 5s."""
    tasks = [gtask("a"), gtask("b")]
    scripts = {"a": [Script(duration=1)], "b": [Script(duration=5, code=2)]}
    result, spawner, _, _ = run_group(tasks, scripts)
    assert result.results["a"].status is TaskStatus.SUCCEEDED
    assert (result.exit_status, result.first_failure) == (2, "b")
    assert [t for t, kind, _ in spawner.timeline if kind == "hook"] == [5, 5]


def test_all_succeeding_exits_zero():
    """Every task succeeding ends the group with 0."""
    result, _, _, _ = run_group([gtask("a"), gtask("b")], {"a": [Script()], "b": [Script()]})
    assert (result.exit_status, result.first_failure) == (0, None)


def test_succeeded_dependency_gates_the_start():
    """web waits for migrate to succeed (3s) before starting."""
    tasks = [gtask("migrate"), gtask("web", ("migrate", Condition.SUCCEEDED))]
    scripts = {"migrate": [Script(duration=3)], "web": [Script(duration=1, code=9)]}
    result, spawner, _, _ = run_group(tasks, scripts)
    starts = {name: t for t, kind, name in spawner.timeline if kind == "run"}
    assert starts == {"migrate": 0, "web": 3}
    assert result.exit_status == 9


def test_failed_dependency_fails_the_dependent_without_running_it():
    """migrate fails: web never starts; the group ends with migrate's status."""
    tasks = [gtask("migrate"), gtask("web", ("migrate", Condition.SUCCEEDED))]
    result, spawner, _, _ = run_group(tasks, {"migrate": [Script(code=5)]})
    assert spawner.started("run") == ["migrate"]
    assert (result.exit_status, result.first_failure) == (5, "migrate")
    assert spawner.started("hook") == ["migrate"]


def test_dependency_ending_without_its_condition_fails_the_dependent():
    """b waits for a to be ready, but a exits 0 before its probe passes: b fails (1)."""
    probe = ReadyProbe(command="check", interval=SECOND, timeout=60 * SECOND)
    tasks = [gtask("a", ready=probe), gtask("b", ("a", Condition.READY))]
    result, spawner, sink, _ = run_group(tasks, {"a": [Script(duration=0.5)]})
    assert (result.exit_status, result.first_failure) == (1, "b")
    assert "dependency-failed" in sink.names()
    assert "b" not in spawner.started("run")


def test_ready_by_stdout_starts_dependents():
    """web becomes ready when its stdout regex matches at 4s; poll starts then."""
    probe = ReadyProbe(stdout="Listening")
    tasks = [gtask("web", ready=probe), gtask("poll", ("web", Condition.READY))]
    scripts = {
        "web": [Script(duration=FOREVER, stdout_match_after=4)],
        "poll": [Script(duration=1, code=3)],
    }
    result, spawner, _, _ = run_group(tasks, scripts)
    starts = {name: t for t, kind, name in spawner.timeline if kind == "run"}
    assert starts == {"web": 0, "poll": 4}
    assert result.first_failure == "poll"


def test_ready_probe_command_is_retried_until_it_succeeds():
    """The probe fails twice (1s apart) and passes on the third try: dependent starts at 2s."""
    probe = ReadyProbe(command="check", interval=SECOND, timeout=30 * SECOND)
    tasks = [gtask("db", ready=probe), gtask("app", ("db", Condition.READY))]
    scripts = {"db": [Script(duration=FOREVER)], "app": [Script(duration=1, code=7)]}
    probes = {"db": [Script(code=1), Script(code=1), Script(code=0)]}
    result, spawner, _, _ = run_group(tasks, scripts, probes=probes)
    starts = {name: t for t, kind, name in spawner.timeline if kind == "run"}
    assert starts == {"db": 0, "app": 2}
    assert spawner.started("probe") == ["db", "db", "db"]
    assert result.exit_status == 7


def test_ready_probe_timeout_fails_waiting_dependents():
    """A probe that never passes within its timeout fails the dependents."""
    probe = ReadyProbe(command="check", interval=SECOND, timeout=3 * SECOND)
    tasks = [gtask("db", ready=probe), gtask("app", ("db", Condition.READY))]
    result, _, sink, _ = run_group(tasks, {"db": [Script(duration=FOREVER)]})
    assert (result.first_failure, result.exit_status) == ("app", 1)
    assert "not-ready" in sink.names()


def test_hooks_run_in_reverse_dependency_order():
    """web depends on migrate: poll (declared last) and web go before migrate."""
    tasks = [gtask("migrate"), gtask("web", ("migrate", Condition.STARTED)), gtask("poll")]
    scripts = {
        "migrate": [Script(duration=FOREVER)],
        "web": [Script(duration=FOREVER)],
        "poll": [Script(duration=1, code=1)],
    }
    _, spawner, _, _ = run_group(tasks, scripts)
    assert spawner.started("hook") == ["poll", "web", "migrate"]


def test_hanging_hook_does_not_block_the_next_one():
    """A hook that hangs is cut at its own timeout; the next hook still runs."""
    tasks = [gtask("a", shutdown_timeout=2 * SECOND), gtask("b", shutdown_timeout=2 * SECOND)]
    hooks = {"b": Script(duration=FOREVER)}
    _, spawner, sink, _ = run_group(tasks, {"a": [Script()], "b": [Script()]}, hooks=hooks)
    hook_times = [(t, name) for t, kind, name in spawner.timeline if kind == "hook"]
    assert hook_times == [(0, "b"), (2, "a")]
    assert "hook-failed" in sink.names()


def test_all_hooks_together_are_bounded_by_the_shutdown_timeout():
    """With a 3s total, a second hanging hook is cut at 3s and a third is skipped."""
    tasks = [gtask(n) for n in ("a", "b", "c")]
    hooks = {"c": Script(duration=2), "b": Script(duration=FOREVER)}
    _, spawner, sink, clock = run_group(
        tasks, {n: [Script()] for n in "abc"}, hooks=hooks, shutdown_timeout=3 * SECOND
    )
    assert spawner.started("hook") == ["c", "b"]
    assert "hook-skipped" in sink.names()
    assert clock.now() == 3


def test_stop_request_stops_everything_and_runs_hooks():
    """An outside stop at 5s stops every task; hooks still run; nobody failed."""
    tasks = [gtask("a"), gtask("b")]
    scripts = {"a": [Script(duration=FOREVER)], "b": [Script(duration=FOREVER)]}
    result, spawner, _, _ = run_group(tasks, scripts, stop_at=5)
    assert result.first_failure is None
    assert {r.status for r in result.results.values()} == {TaskStatus.STOPPED}
    assert spawner.started("hook") == ["b", "a"]


def test_tasks_waiting_on_dependencies_end_cleanly_on_stop():
    """A task still waiting for its dependency when a stop comes never starts."""
    tasks = [gtask("a"), gtask("b", ("a", Condition.SUCCEEDED))]
    result, spawner, _, _ = run_group(tasks, {"a": [Script(duration=FOREVER)]}, stop_at=1)
    assert spawner.started("run") == ["a"]
    assert result.results["b"].status is TaskStatus.STOPPED
    assert spawner.started("hook") == ["a"]


def test_group_tasks_get_prefixed_lined_output_and_no_stdin():
    """Group attempts copy output line by line and read /dev/null."""
    _, spawner, _, _ = run_group([gtask("a")], {"a": [Script()]})
    launch = spawner.task_launches[0]
    assert launch.output_prefix == b""
    assert launch.stdin_null


def test_no_all_ready_when_a_readiness_probe_times_out():
    """A probe that never passes: the group stops and systemd never hears READY=1."""
    probe = ReadyProbe(command="check", interval=SECOND, timeout=3 * SECOND)
    tasks = [gtask("db", ready=probe), gtask("other")]
    scripts = {"db": [Script(duration=5)], "other": [Script(duration=FOREVER)]}
    _, _, sink, _ = run_group(tasks, scripts, stop_at=10)
    assert "not-ready" in sink.names()
    assert "all-ready" not in sink.names()


def test_no_all_ready_after_a_stop_during_start_up():
    """TERM while a task still waits for its probe: READY=1 is never sent."""
    probe = ReadyProbe(command="check", interval=SECOND, timeout=30 * SECOND)
    tasks = [gtask("db", ready=probe), gtask("app", ("db", Condition.READY))]
    scripts = {"db": [Script(duration=FOREVER)], "app": [Script(duration=FOREVER)]}
    _, _, sink, _ = run_group(tasks, scripts, stop_at=2)
    assert "all-ready" not in sink.names()


def test_a_one_shot_task_that_succeeded_counts_as_ready():
    """migrate (done, exit 0) and web (ready): READY=1 once web is ready."""
    tasks = [gtask("migrate"), gtask("web", ("migrate", Condition.SUCCEEDED))]
    scripts = {"migrate": [Script(duration=1)], "web": [Script(duration=FOREVER)]}
    _, _, sink, _ = run_group(tasks, scripts, stop_at=5)
    assert "all-ready" in sink.names()


def test_a_waiting_task_says_what_it_still_waits_for_every_few_seconds():
    """web waits 12 s for migrate: a line at 5 s and at 10 s names what it waits for."""
    clock = FakeClock()
    tasks = [gtask("migrate"), gtask("web", ("migrate", Condition.SUCCEEDED))]
    scripts = {"migrate": [Script(duration=12)], "web": [Script(duration=1)]}
    spawner = GroupSpawner(clock, scripts, None, None)
    heard: list[tuple[float, str, str]] = []

    class TimedSink(RecordingSink):
        def emit(self, event):
            if event.name == "waiting":
                heard.append((clock.now(), event.task, event.message))

    async def main() -> RunnerResult:
        runner = Runner(
            GroupSpec(tuple(tasks), 30 * SECOND), spawner, clock, TimedSink(), StopControl(),
            environ={},
        )  # fmt: skip
        return await runner.run()

    result = asyncio.run(main())
    assert heard == [
        (5.0, "web", "waiting for migrate to be succeeded"),
        (10.0, "web", "waiting for migrate to be succeeded"),
    ]
    assert result.exit_status == 0
