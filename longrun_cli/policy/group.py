"""A group of tasks: dependencies, readiness probes and the orders they imply (pure)."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.taskspec import TaskSpec

if TYPE_CHECKING:
    from longrun_cli.policy.lockurl import LockSpec

# How long all shutdown hooks of a group may take together, unless configured.
DEFAULT_SHUTDOWN_TIMEOUT = 30 * SECOND
# Lines of each task's output a running group keeps for ``longrun ctl logs``.
DEFAULT_LOG_LINES = 1000


class DependencyError(SpecError):
    """A ``depends_on`` that cannot hold; ``task`` is where it is written."""

    def __init__(self, message: str, task: str) -> None:
        super().__init__(
            f"task {quote(task)} {message}" if not message.startswith("dependency") else message
        )
        self.task = task


class Condition(Enum):
    """What a dependent waits for (``depends_on = { name = "..." }``)."""

    STARTED = "started"
    READY = "ready"
    SUCCEEDED = "succeeded"


PROBE_KINDS = ("stdout", "stderr", "output", "command", "http", "tcp")


@dataclass(frozen=True)
class ReadyProbe:
    """Readiness, one of: a regex on stdout, stderr or either (``output``); or, tried every
    ``interval`` until it passes: a command that succeeds, an HTTP GET answered 2xx or
    3xx, a TCP connection accepted. Not ready within ``timeout``: dependents fail.
    """

    stdout: str | None = None
    command: str | None = None
    interval: int = SECOND
    timeout: int = 30 * SECOND
    stderr: str | None = None
    output: str | None = None
    http: str | None = None
    tcp: str | None = None

    def __post_init__(self) -> None:
        given = [kind for kind in PROBE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise SpecError(f"ready needs exactly one of {', '.join(PROBE_KINDS)}")
        if self.interval <= 0 or self.timeout <= 0:
            raise SpecError("ready interval and timeout must be > 0")
        if self.http is not None:
            check_http_url(self.http)
        if self.tcp is not None:
            split_host_port(self.tcp)

    @property
    def kind(self) -> str:
        return next(kind for kind in PROBE_KINDS if getattr(self, kind) is not None)

    @property
    def stdout_patterns(self) -> tuple[str, ...]:
        regex = self.stdout if self.stdout is not None else self.output
        return () if regex is None else (regex,)

    @property
    def stderr_patterns(self) -> tuple[str, ...]:
        regex = self.stderr if self.stderr is not None else self.output
        return () if regex is None else (regex,)

    def describe(self) -> str:
        from longrun_cli.policy.duration import format_duration

        if self.kind in ("stdout", "stderr", "output"):
            return self.what()
        return f"{self.what()}, every {format_duration(self.interval)}"

    def what(self) -> str:
        """What passing means, without when it is tried."""
        if self.kind in ("stdout", "stderr", "output"):
            stream = "stdout or stderr" if self.kind == "output" else self.kind
            return f"{stream} matches /{getattr(self, self.kind)}/"
        if self.http is not None:
            return f"GET {self.http} answers 2xx or 3xx"
        if self.tcp is not None:
            return f"{self.tcp} accepts a TCP connection"
        import shlex

        return f"sh -c {shlex.quote(self.command or '')} succeeds"


def check_http_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http:// or https:// URL, or SpecError."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SpecError(f"ready http {quote(url)}: not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"ready http {quote(url)}: expected http://HOST[:PORT]/PATH")
    default = 443 if parts.scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or default, path


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) of a tcp probe, or SpecError."""
    host, colon, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isascii() or not port.isdigit():
        raise SpecError(f"ready tcp {quote(address)}: expected HOST:PORT")
    if not 1 <= int(port) <= 65535:
        raise SpecError(f"ready tcp {quote(address)}: port {port} is not from 1 to 65535")
    return host, int(port)


@dataclass(frozen=True)
class GroupTask:
    """One task of a group with what it waits for and how it tells it is ready."""

    spec: TaskSpec
    depends_on: tuple[tuple[str, Condition], ...] = ()
    ready: ReadyProbe | None = None
    scale: int = 1  # replicas to make (policy.replicas.expand); 1 once expanded

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class GroupSpec:
    """Tasks in declaration order; validated as a DAG when built."""

    tasks: tuple[GroupTask, ...]
    shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT
    # [runner] name, control and log_lines: the control socket (longrun ctl).
    name: str | None = None
    control: str | None = None
    log_lines: int = DEFAULT_LOG_LINES
    # [runner] env_file and port: read and applied by cli.conventions.
    env_files: tuple[str, ...] = ()
    port: int | None = None
    # --lock / [runner] lock: the whole group is a singleton among those sharing it.
    lock: LockSpec | None = None
    order: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise SpecError("the group has no tasks")
        names = [task.name for task in self.tasks]
        counts = Counter(names)  # linear: a 2,000-task group is checked in a blink
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise SpecError(f"duplicate task names: {', '.join(duplicates)}")
        if self.shutdown_timeout <= 0:
            raise SpecError("shutdown_timeout must be > 0")
        by_name = {task.name: task for task in self.tasks}
        for task in self.tasks:
            for dependency, condition in task.depends_on:
                if dependency not in by_name:
                    raise DependencyError(f"depends on unknown task {quote(dependency)}", task.name)
                if dependency == task.name:
                    raise DependencyError("depends on itself", task.name)
                other = by_name[dependency].spec
                if condition is Condition.SUCCEEDED and (other.interval or other.schedule):
                    kind = "an interval" if other.interval else "a scheduled"
                    raise SpecError(
                        f"task {quote(task.name)} waits for {quote(dependency)} to succeed, but "
                        f"{quote(dependency)} is {kind} task and never finishes successfully"
                    )
        object.__setattr__(self, "order", start_order(self.tasks))

    def task(self, name: str) -> GroupTask:
        return next(task for task in self.tasks if task.name == name)

    def levels(self) -> list[list[str]]:
        """Start order as DAG levels: level 0 needs nothing, level n needs level < n."""
        level: dict[str, int] = {}
        for name in self.order:
            deps = [dep for dep, _ in self.task(name).depends_on]
            level[name] = 1 + max((level[dep] for dep in deps), default=-1)
        grouped: list[list[str]] = [[] for _ in range(1 + max(level.values()))]
        for task in self.tasks:
            grouped[level[task.name]].append(task.name)
        return grouped

    def shutdown_order(self) -> list[str]:
        """Dependents before what they depend on; ties last-declared first (LIFO)."""
        return shutdown_order(self.tasks)


def start_order(tasks: tuple[GroupTask, ...]) -> tuple[str, ...]:
    """Topological order, ties by declaration; raises SpecError naming a cycle."""
    index = {task.name: position for position, task in enumerate(tasks)}
    waiting = {task.name: {dep for dep, _ in task.depends_on} for task in tasks}
    dependents: dict[str, list[str]] = {task.name: [] for task in tasks}
    for task in tasks:
        for dep, _ in task.depends_on:
            dependents[dep].append(task.name)
    ready = [index[name] for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = tasks[heapq.heappop(ready)].name
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(ready, index[dependent])
    if len(order) < len(tasks):
        cycle = _find_cycle({name: deps for name, deps in waiting.items() if deps})
        raise DependencyError("dependency cycle: " + " -> ".join(cycle), cycle[0])
    return tuple(order)


def shutdown_order(tasks: tuple[GroupTask, ...]) -> list[str]:
    index = {task.name: position for position, task in enumerate(tasks)}
    remaining_dependents: dict[str, set[str]] = {task.name: set() for task in tasks}
    for task in tasks:
        for dep, _ in task.depends_on:
            remaining_dependents[dep].add(task.name)
    ready = [-index[name] for name, deps in remaining_dependents.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        task = tasks[-heapq.heappop(ready)]
        order.append(task.name)
        for dep, _ in task.depends_on:
            remaining_dependents[dep].discard(task.name)
            if not remaining_dependents[dep]:
                heapq.heappush(ready, -index[dep])
    return order


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle in ``graph`` (every node has an outgoing edge), first node repeated."""
    start = min(graph)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min(dep for dep in graph[node] if dep in graph)
        if node in seen:
            return [*path[seen[node] :], node]
        seen[node] = len(path)
        path.append(node)
