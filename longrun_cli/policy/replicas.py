"""Replicas and ports, as foreman and honcho make them (pure).

``-c worker=3`` or ``scale = 3`` turns ``worker`` into ``worker.1`` … ``worker.3``,
each a full task with its own budgets and ``LONGRUN_REPLICA=K``; a dependency on
``worker`` waits for every replica. With a base port, each task gets ``PORT``:
the base, +100 per task in declaration order, +1 per replica (foreman's rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.group import GroupTask

MAX_SCALE = 1000
PORT_STEP = 100  # between tasks; replicas of one task take consecutive ports


def parse_concurrency(values: Sequence[str]) -> dict[str, int]:
    """``-c/--concurrency NAME=N[,NAME=N...]`` (repeatable) → {NAME: N}."""
    scales: dict[str, int] = {}
    for value in values:
        for item in value.split(","):
            name, equals, count = item.partition("=")
            name = name.strip()
            if not equals or not name:
                raise SpecError(f"-c {quote(value)}: expected NAME=N[,NAME=N...]")
            scales[name] = parse_scale(count.strip(), f"-c {quote(value)}")
    return scales


def parse_scale(text: str, where: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise SpecError(f"{where}: a replica count is an integer from 1 to {MAX_SCALE}")
    count = int(text)
    if not 1 <= count <= MAX_SCALE:
        raise SpecError(f"{where}: a replica count is an integer from 1 to {MAX_SCALE}")
    return count


def expand(
    tasks: Sequence[GroupTask],
    scales: Mapping[str, int],
    port_base: int | None = None,
    *,
    ports_asked: bool = True,
) -> tuple[GroupTask, ...]:
    """Every task as its replicas (``scales`` over each task's own ``scale``), with PORT.

    A PORT past 65535 is an error when a base was asked for (``--port``, ``[runner]
    port``); from the default base (5000, or PORT), such tasks get none: a -t or
    Procfile group of 2,000 workers must not fail for a convention of web servers.
    """
    names = {task.name for task in tasks}
    unknown = sorted(set(scales) - names)
    if unknown:
        raise SpecError(f"-c names no task: {', '.join(quote(name) for name in unknown)}")
    counts = {task.name: scales.get(task.name, task.scale) for task in tasks}

    def replica_names(name: str) -> list[str]:
        count = counts[name]
        return [name] if count == 1 else [f"{name}.{k}" for k in range(1, count + 1)]

    expanded: list[GroupTask] = []
    for index, task in enumerate(tasks):
        depends_on = tuple(
            (replica, condition)
            for dependency, condition in task.depends_on
            for replica in replica_names(dependency)
        )
        for number, name in enumerate(replica_names(task.name), start=1):
            env = dict(task.spec.env)
            if port_base is not None and "PORT" not in env:
                port = port_base + PORT_STEP * index + number - 1
                if port > 65535 and ports_asked:
                    raise SpecError(f"task {quote(name)}: PORT {port} is above 65535")
                if port <= 65535:
                    env["PORT"] = str(port)
            env["LONGRUN_REPLICA"] = str(number)
            spec = task.spec._replace(name=name, env=env)
            expanded.append(replace(task, spec=spec, depends_on=depends_on, scale=1))
    return tuple(expanded)
