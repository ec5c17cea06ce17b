"""--state-file in virtual time: a second Task continues the first one's backoff."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest

from longrun_cli.engine import statefile
from longrun_cli.engine.events import RecordingSink
from longrun_cli.engine.task import Task
from longrun_cli.engine.taskio import StopControl, TaskResult, TaskStatus
from tests.engine.fakes import FakeClock, FakeSpawner, Script
from tests.engine.test_task import fail, rules, spec

START = datetime(2026, 3, 1, tzinfo=UTC)


class InlineExecutor:
    """Saves done at once: a thread's IO would look idle to the virtual clock, which would
    then jump ahead of it."""

    def submit(self, fn, *args):
        future: Future[object] = Future()
        future.set_result(fn(*args))
        return future


@pytest.fixture(autouse=True)
def inline_saves(monkeypatch):
    monkeypatch.setattr(statefile, "_thread", InlineExecutor)


def run_at(
    start: datetime, task_spec, scripts: list[Script], stop_at: float | None = None
) -> tuple[TaskResult, FakeSpawner, RecordingSink]:
    clock = FakeClock(start)
    spawner = FakeSpawner(clock, scripts)
    sink = RecordingSink()

    async def main() -> TaskResult:
        stop = StopControl()
        task = Task(task_spec, spawner, clock, sink, stop, uniform01=lambda: 0.5, environ={})
        if stop_at is not None:

            async def stopper() -> None:
                await clock.sleep(stop_at)
                stop.request(15)

            stopping = asyncio.ensure_future(stopper())
            result = await task.run()
            stopping.cancel()
            return result
        return await task.run()

    return asyncio.run(main()), spawner, sink


def test_a_second_run_waits_out_the_backoff_and_continues_the_curve(tmp_path):
    task_spec = spec(policy=rules("75:5:1s"), state_file=str(tmp_path / "state"))
    # Fails at 0 (retry in 1s) and at 1 (retry in 2s); stopped at 1.5, during that wait.
    first, _spawner, _sink = run_at(START, task_spec, [fail(75), fail(75)], stop_at=1.5)
    assert first.status is TaskStatus.STOPPED
    # Restarted 0.5 s later: 1 s of the 2 s wait is left; then retry 3 waits 4 s.
    later = START + timedelta(seconds=2)
    second, spawner, sink = run_at(later, task_spec, [fail(75), fail(75), Script()])
    assert second.status is TaskStatus.SUCCEEDED
    assert spawner.task_start_times == [1.0, 5.0, 13.0]
    retries = [dict(e.fields)["retry"] for e in sink.events if e.name == "retry"]
    assert retries == ["3/5", "4/5"]
    # Success cleared it: a third run starts at once, with fresh budgets.
    third, spawner, sink = run_at(later + timedelta(hours=1), task_spec, [Script()])
    assert spawner.task_start_times == [0.0]
    assert third.status is TaskStatus.SUCCEEDED
    assert "state-resumed" not in sink.names()


def test_an_exhausted_budget_still_spaces_restarts(tmp_path):
    """A crash loop (exhausted, restarted by systemd): each restart waits the next delay."""
    task_spec = spec(policy=rules("75:1:1s"), state_file=str(tmp_path / "state"))
    first, _spawner, _sink = run_at(START, task_spec, [fail(75), fail(75)])
    assert first.status is TaskStatus.EXHAUSTED
    # The exhausting failure was the 2nd (at t=1): the next delay is 2 s from then.
    second, spawner, _sink = run_at(START + timedelta(seconds=1), task_spec, [fail(75)])
    assert second.status is TaskStatus.EXHAUSTED
    assert spawner.task_start_times == [2.0]
