"""Group DAG: validation, start order and reverse-topological shutdown order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import Condition, GroupSpec, GroupTask, ReadyProbe
from longrun_cli.policy.taskspec import TaskSpec


def task(name: str, *deps: str, interval: int | None = None) -> GroupTask:
    spec = TaskSpec(name=name, argv=("true",), interval=interval)
    return GroupTask(spec, tuple((dep, Condition.STARTED) for dep in deps))


def test_independent_tasks_shut_down_last_declared_first():
    """Without dependencies, hooks run LIFO (the Go package's order)."""
    group = GroupSpec((task("a"), task("b"), task("c")))
    assert group.shutdown_order() == ["c", "b", "a"]
    assert group.levels() == [["a", "b", "c"]]


def test_dependents_shut_down_before_their_dependencies():
    """web depends on migrate: web's hook runs first, even though declared later."""
    group = GroupSpec((task("migrate"), task("web", "migrate"), task("poll")))
    assert group.shutdown_order() == ["poll", "web", "migrate"]
    assert group.levels() == [["migrate", "poll"], ["web"]]


def test_cycle_is_a_configuration_error_naming_the_tasks():
    """a -> b -> a is rejected with both names."""
    with pytest.raises(SpecError, match="cycle: a -> b -> a"):
        GroupSpec((task("a", "b"), task("b", "a")))


def test_unknown_dependency_is_named():
    """depends_on an undefined task names both tasks."""
    with pytest.raises(SpecError, match="'web' depends on unknown task 'db'"):
        GroupSpec((task("web", "db"),))


def test_waiting_for_an_interval_task_to_succeed_is_rejected():
    """An interval task never finishes successfully: 'succeeded' on it is an error."""
    poll = task("poll", interval=SECOND)
    waiter = GroupTask(TaskSpec(name="w", argv=("true",)), (("poll", Condition.SUCCEEDED),))
    with pytest.raises(SpecError, match="interval task"):
        GroupSpec((poll, waiter))


def test_duplicate_names_are_rejected():
    """Two tasks with one name are an error."""
    with pytest.raises(SpecError, match="duplicate task names: a"):
        GroupSpec((task("a"), task("a")))


def test_ready_probe_needs_exactly_one_kind():
    """ready takes stdout or command, not both, not neither."""
    with pytest.raises(SpecError):
        ReadyProbe()
    with pytest.raises(SpecError):
        ReadyProbe(stdout="x", command="true")


@st.composite
def dags(draw: st.DrawFn) -> list[GroupTask]:
    """Random DAGs: each task may depend on any earlier-generated task, then shuffled."""
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"t{i}" for i in range(count)]
    tasks = []
    for index, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:index]))) if index else set()
        tasks.append(task(name, *sorted(deps)))
    return draw(st.permutations(tasks))


@given(dags())
def test_random_dags_start_in_topological_order_and_stop_in_reverse(tasks):
    """Every task starts after its dependencies and shuts down before them."""
    group = GroupSpec(tuple(tasks))
    start = {name: i for i, name in enumerate(group.order)}
    stop = {name: i for i, name in enumerate(group.shutdown_order())}
    assert sorted(start) == sorted(stop) == sorted(t.name for t in tasks)
    for t in tasks:
        for dep, _ in t.depends_on:
            assert start[dep] < start[t.name]
            assert stop[t.name] < stop[dep]
    levels = group.levels()
    level_of = {name: n for n, names in enumerate(levels) for name in names}
    for t in tasks:
        assert all(level_of[dep] < level_of[t.name] for dep, _ in t.depends_on)
