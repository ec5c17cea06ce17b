"""Operations on a running group (ctl stop, start, restart) and the states it shows, in virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from longrun_cli.engine.events import RecordingSink
from longrun_cli.engine.runner import Runner, RunnerResult
from longrun_cli.engine.taskio import StopControl, TaskStatus
from longrun_cli.engine.taskstate import Refused
from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.group import Condition, GroupSpec, ReadyProbe
from tests.engine.fakes import FakeClock, GroupSpawner, Script
from tests.engine.test_runner import FOREVER, gtask
from tests.engine.test_task import rules

Step = Callable[[Runner], Awaitable[Any]]


def operate(tasks, scripts, steps: list[tuple[float, Step]], probes=None, hooks=None):
    """Run the group; at each virtual time, apply a step to the runner and keep what it returned."""
    clock = FakeClock()
    spawner = GroupSpawner(clock, scripts, hooks, probes)
    sink = RecordingSink()
    seen: list[Any] = []

    async def main() -> RunnerResult:
        stop = StopControl()
        runner = Runner(GroupSpec(tuple(tasks)), spawner, clock, sink, stop, environ={})

        async def drive() -> None:
            for at, step in steps:
                await clock.sleep(at - clock.now())
                try:
                    seen.append(await step(runner))
                except Refused as exc:
                    seen.append(f"refused: {exc}")

        driver = asyncio.ensure_future(drive())
        result = await runner.run()
        driver.cancel()
        return result

    return asyncio.run(main()), spawner, sink, seen


def states(runner: Runner) -> dict[str, str]:
    return {view.name: view.state for view in runner.views()}


async def snapshot(runner: Runner) -> dict[str, str]:
    return states(runner)


def test_restart_stops_the_attempt_and_runs_it_again_at_once_leaving_the_others():
    tasks = [gtask("web"), gtask("worker")]
    scripts = {"web": [Script(duration=FOREVER)] * 2, "worker": [Script(duration=20, code=3)]}
    steps = [(5.0, lambda r: r.restart(["web"])), (6.0, snapshot_views)]
    result, spawner, sink, seen = operate(tasks, scripts, steps)
    runs = [(t, name) for t, kind, name in spawner.timeline if kind == "run"]
    assert runs == [(0, "web"), (0, "worker"), (5, "web")]
    first_web, worker = spawner.children[0], spawner.children[1]
    assert first_web.stopped_with == [15]  # SIGTERM, the task's stop signal
    assert worker.stopped_with == []  # untouched by web's restart
    assert seen[0] == ["web"]
    views = seen[1]
    assert views["web"].state == "running"
    assert views["web"].pid == spawner.children[2].pid
    assert views["web"].run == 2
    assert views["web"].since == 5
    # The restart was no failure: the group went on until worker failed at 20s.
    assert (result.exit_status, result.first_failure) == (3, "worker")
    assert "attempt-failed" not in [e.name for e in sink.events if e.task == "web"]


async def snapshot_views(runner: Runner) -> dict[str, Any]:
    return {view.name: view for view in runner.views()}


def test_restart_in_backoff_runs_at_once_with_fresh_budgets():
    """One retry of 75 allowed; after a restart the budget is whole again."""
    task = gtask("job", policy=rules("75:1:10s"))
    scripts = {"job": [Script(duration=1, code=75)] * 2 + [Script(duration=1, code=0)]}
    steps = [(2.0, snapshot), (2.0, lambda r: r.restart(["job"]))]
    result, spawner, _, seen = operate([task], scripts, steps)
    assert seen[0] == {"job": "backoff"}
    starts = [t for t, kind, _ in spawner.timeline if kind == "run"]
    # 0: fails, retry due at 11; 2: restarted at once; 3: fails again and is retried
    # at 13 (the budget of one retry was spent at 1, and reset by the restart); 13: ok.
    assert starts == [0, 2, 13]
    assert result.exit_status == 0


def test_stop_ends_one_task_stopped_and_the_group_goes_on():
    tasks = [gtask("web"), gtask("worker")]
    scripts = {"web": [Script(duration=FOREVER)], "worker": [Script(duration=10, code=0)]}
    steps = [(2.0, lambda r: r.stop(["web"])), (3.0, snapshot)]
    result, spawner, _, seen = operate(tasks, scripts, steps)
    assert seen == [["web"], {"web": "stopped", "worker": "running"}]
    assert spawner.children[0].stopped_with == [15]
    # No failure, no cancel: worker ran to its end at 10s; the stopped task counts as 0.
    assert result.exit_status == 0
    assert result.first_failure is None
    assert result.results["web"].status is TaskStatus.STOPPED
    assert spawner.children[1].stopped_with == []


def test_start_runs_a_stopped_task_again_and_runs_keep_counting():
    tasks = [gtask("web"), gtask("clock")]
    scripts = {"web": [Script(duration=FOREVER)] * 2, "clock": [Script(duration=30, code=4)]}
    steps = [
        (2.0, lambda r: r.stop(["web"])),
        (4.0, lambda r: r.start(["web"])),
        (5.0, snapshot_views),
    ]
    result, spawner, _, seen = operate(tasks, scripts, steps)
    assert seen[1] == ["web"]
    view = seen[2]["web"]
    assert (view.state, view.run, view.pid) == ("running", 2, spawner.children[2].pid)
    assert [t for t, kind, name in spawner.timeline if (kind, name) == ("run", "web")] == [0, 4]
    assert result.exit_status == 4


def test_refusals_name_the_task_and_the_reason():
    tasks = [
        gtask("web"),
        gtask("once"),
        gtask("late", ("web", Condition.SUCCEEDED)),
    ]
    scripts = {"web": [Script(duration=FOREVER)], "once": [Script(duration=1)]}
    steps: list[tuple[float, Step]] = [
        (2.0, lambda r: r.restart(["nope"])),
        (2.0, lambda r: r.start(["web"])),
        (2.0, lambda r: r.restart(["once"])),
        (2.0, lambda r: r.stop(["late"])),
        (2.0, lambda r: r.stop([])),
        (3.0, lambda r: r.stop(["web"])),
        (3.0, lambda r: r.stop(["web"])),
    ]
    _, _, _, seen = operate(tasks, scripts, steps)
    assert seen[:5] == [
        "refused: no task named 'nope'",
        "refused: task 'web' is running; use restart",
        "refused: task 'once' has ended (succeeded); it cannot be restarted now",
        "refused: task 'late' has not started: it is waiting for its dependencies",
        "refused: name at least one task",
    ]
    assert seen[5] == ["web"]
    # web stopped; late waits on it: nothing can move without an operator, so the
    # group ended and the second stop is refused.
    assert seen[6] == "refused: the group is stopping"


def test_a_dependent_of_a_stopped_task_waits_and_starts_when_it_is_started():
    """ctl stop of a dependency is no failure: the dependent waits rather than failing."""
    probe = ReadyProbe(stdout="up")
    tasks = [gtask("db", ready=probe), gtask("app", ("db", Condition.READY)), gtask("tick")]
    scripts = {
        "db": [Script(duration=FOREVER), Script(duration=FOREVER, stdout_match_after=1)],
        "app": [Script(duration=5, code=6)],
        "tick": [Script(duration=50)],
    }
    steps = [
        (1.0, snapshot),
        (2.0, lambda r: r.stop(["db"])),
        (3.0, snapshot),
        (4.0, lambda r: r.start(["db"])),
        (6.0, snapshot),
    ]
    result, spawner, sink, seen = operate(tasks, scripts, steps)
    assert seen[0] == {"db": "starting", "app": "waiting", "tick": "running"}
    assert seen[2] == {"db": "stopped", "app": "waiting", "tick": "running"}
    assert seen[4] == {"db": "ready", "app": "running", "tick": "running"}
    assert [t for t, kind, name in spawner.timeline if (kind, name) == ("run", "app")] == [5]
    assert "dependency-failed" not in sink.names()
    assert result.first_failure == "app"


def test_stopping_every_task_ends_the_group_with_zero():
    tasks = [gtask("a"), gtask("b")]
    scripts = {"a": [Script(duration=FOREVER)], "b": [Script(duration=FOREVER)]}
    result, _, _, seen = operate(tasks, scripts, [(1.0, lambda r: r.stop(["a", "b"]))])
    assert seen == [["a", "b"]]
    assert result.exit_status == 0
    assert {name: r.status for name, r in result.results.items()} == {
        "a": TaskStatus.STOPPED,
        "b": TaskStatus.STOPPED,
    }


def test_states_through_a_tasks_life():
    """waiting, starting (delay), running, backoff, sleeping, succeeded: each shown in turn."""
    tasks = [
        gtask("first", delay=2 * SECOND),
        gtask("then", ("first", Condition.SUCCEEDED), policy=rules("75:1:10s")),
        gtask("tick", interval=20 * SECOND),
    ]
    scripts = {
        "first": [Script(duration=2)],
        "then": [Script(duration=1, code=75), Script(duration=1)],
        "tick": [Script(duration=1)] * 3,
    }
    steps = [
        (1.0, snapshot),
        (3.0, snapshot),
        (6.0, snapshot),
        (16.5, snapshot),
        (17.0, lambda r: r.stop(["tick"])),
    ]
    result, _, _, seen = operate(tasks, scripts, steps)
    assert result.exit_status == 0  # the interval task stopped on request: the group ended
    assert seen[:4] == [
        {"first": "starting", "then": "waiting", "tick": "running"},
        {"first": "running", "then": "waiting", "tick": "sleeping"},
        {"first": "succeeded", "then": "backoff", "tick": "sleeping"},
        {"first": "succeeded", "then": "succeeded", "tick": "sleeping"},
    ]


@pytest.mark.parametrize("verb", ["stop", "restart", "start"])
def test_no_operation_once_the_group_is_stopping(verb):
    tasks = [gtask("a"), gtask("b")]
    scripts = {"a": [Script(duration=1, code=2)], "b": [Script(duration=FOREVER)]}
    steps = [(1.5, lambda r: getattr(r, verb)(["b"]))]
    _, _, _, seen = operate(tasks, scripts, steps, hooks={"a": Script(duration=5)})
    assert seen == ["refused: the group is stopping"]


def test_a_restart_skips_the_initial_delay():
    """--delay is for the group's start; a task restarted on request runs at once."""
    tasks = [gtask("late", delay=10 * SECOND), gtask("clock")]
    scripts = {"late": [Script(duration=FOREVER)] * 3, "clock": [Script(duration=40, code=5)]}
    steps = [(2.0, lambda r: r.restart(["late"])), (20.0, lambda r: r.restart(["late"]))]
    result, spawner, _, seen = operate(tasks, scripts, steps)
    assert seen == [["late"], ["late"]]
    assert [t for t, kind, name in spawner.timeline if (kind, name) == ("run", "late")] == [2, 20]
    assert result.exit_status == 5


def test_a_task_stopped_before_the_group_was_ready_does_not_hold_back_ready():
    """systemd's READY=1 (the all-ready event) comes once the tasks left are ready."""
    probe = ReadyProbe(stdout="up")
    tasks = [gtask("web", ready=probe), gtask("slow", ready=probe)]
    scripts = {
        "web": [Script(duration=FOREVER, stdout_match_after=1)],
        "slow": [Script(duration=FOREVER)],  # never says "up"
    }
    steps = [(2.0, lambda r: r.stop(["slow"])), (3.0, lambda r: r.stop(["web"]))]
    _, _, sink, _ = operate(tasks, scripts, steps)
    ready = [e for e in sink.events if e.name == "all-ready"]
    assert len(ready) == 1
