"""--ready and --health in virtual time: the probe's answers are scripted by the clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from longrun_cli.engine.readiness import Prober
from longrun_cli.engine.taskio import TaskStatus
from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.probes import HealthCheck, parse_probe
from longrun_cli.policy.spec import parse_exit_code_rule, parse_unhealthy_rule
from tests.engine.fakes import Script
from tests.engine.test_task import run, spec


@pytest.fixture
def answers(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Callable[[float], str | None]], list[float]]:
    """Script the probe: a function of virtual time giving None (pass) or why it failed."""

    def install(answer: Callable[[float], str | None]) -> list[float]:
        tried: list[float] = []

        async def check(self: Prober, probe: object, task: object, limit: float) -> str | None:
            now = self._clock.now()
            tried.append(now)
            return answer(now)

        monkeypatch.setattr(Prober, "check", check)
        return tried

    return install


def health(interval: int = 10, failures: int = 3) -> HealthCheck:
    return HealthCheck(
        parse_probe("http://127.0.0.1:9/health", "--health"),
        interval=interval * SECOND,
        failures=failures,
    )


def test_failing_checks_in_a_row_stop_the_attempt_as_unhealthy(answers):
    tried = answers(lambda now: None if now < 25 else "answered 503")
    result, spawner, sink = run(spec(health=health()), [Script(duration=100)])
    assert tried == [10, 20, 30, 40, 50]
    assert spawner.children[0].stopped_with == [15]  # SIGTERM, at the third failure
    assert result.status is TaskStatus.FAILED
    assert result.outcome is not None
    assert "answered 503" in (result.outcome.unhealthy or "")
    assert result.exit_status == 128 + 15  # the command died of the TERM
    assert sink.names().count("health-failed") == 3
    assert "unhealthy" in sink.names()


def test_an_unhealthy_attempt_is_retried_only_by_its_rule(answers):
    answers(lambda now: "answered 500" if 25 < now < 60 else None)
    policy = RetryPolicy.build([parse_unhealthy_rule("2:1s")])
    result, spawner, sink = run(
        spec(health=health(), policy=policy), [Script(duration=100), Script(duration=5)]
    )
    assert result.status is TaskStatus.SUCCEEDED
    assert spawner.task_start_times == [0, 51]
    assert "retry" in sink.names()


def test_a_check_that_passes_again_resets_the_count(answers):
    answers(lambda now: "refused" if now in (20, 30, 50, 60) else None)
    result, spawner, sink = run(spec(health=health()), [Script(duration=75)])
    assert result.status is TaskStatus.SUCCEEDED
    assert spawner.children[0].stopped_with == []
    assert sink.names().count("healthy") == 2


def test_liveness_starts_only_once_ready(answers):
    tried = answers(lambda now: None if now >= 3 else "refused")
    task_spec = spec(ready=parse_probe("tcp:127.0.0.1:9", "--ready"), health=health(failures=1))
    result, _spawner, sink = run(task_spec, [Script(duration=25)])
    assert result.status is TaskStatus.SUCCEEDED
    # Readiness tried each second until t=3; then liveness every 10 s from there.
    assert tried == [0, 1, 2, 3, 13, 23]
    ready = [event for event in sink.events if event.name == "ready"]
    assert len(ready) == 1
    assert "accepts a TCP connection" in ready[0].message


def test_readiness_is_proved_again_by_each_attempt_but_announced_once(answers):
    answers(lambda now: None)
    policy = RetryPolicy.build(parse_exit_code_rule("3:2:1s"))
    task_spec = spec(ready=parse_probe("tcp:127.0.0.1:9", "--ready"), policy=policy)
    result, _spawner, sink = run(task_spec, [Script(duration=5, code=3), Script(duration=5)])
    assert result.status is TaskStatus.SUCCEEDED
    levels = [event.level.name for event in sink.events if event.name == "ready"]
    assert levels == ["INFO", "DEBUG"]


def test_a_stop_during_a_sick_spell_is_a_stop_not_unhealthy(answers):
    answers(lambda now: "answered 503")
    result, _spawner, sink = run(spec(health=health()), [Script(duration=100)], stop_at=25)
    assert result.status is TaskStatus.STOPPED
    assert "unhealthy" not in sink.names()
