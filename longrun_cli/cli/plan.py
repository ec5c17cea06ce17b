"""``--dry-run``: the resolved plan, every rule with its backoff schedule."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from longrun_cli.policy.duration import format_duration
from longrun_cli.policy.signals import signal_name
from longrun_cli.policy.taskspec import TaskSpec

if TYPE_CHECKING:
    from longrun_cli.policy.group import GroupSpec

# How many delays to show for a rule with unlimited retries.
_SHOWN_FOR_INF = 8


def describe_plan(spec: TaskSpec) -> str:
    def dur(value: int | None, unset: str = "none") -> str:
        return unset if value is None else format_duration(value)

    schedule = f"every {dur(spec.interval)}" if spec.interval else "once"
    first = f"after {format_duration(spec.delay)}" if spec.delay else "now"
    lines = [
        f"task:        {spec.name}",
        f"command:     {shlex.join(spec.argv)}",
        f"schedule:    {schedule} (first run {first})",
        f"timeout:     {dur(spec.timeout)} per attempt",
        f"deadline:    {dur(spec.deadline)}",
        f"stop:        {signal_name(spec.stop_signal)}, then KILL after "
        f"{format_duration(spec.kill_after)}"
        + (" (foreground: the command alone, not its group)" if spec.foreground else ""),
    ]
    success = sorted({0} | spec.policy.success_codes)
    lines.append("success:     exit " + ",".join(str(code) for code in success))
    if spec.policy.jitter:
        lines.append(f"jitter:      each delay drawn from [d×{1 - spec.policy.jitter:g}, d]")
    if spec.shutdown:
        lines.append(
            f"shutdown:    sh -c {shlex.quote(spec.shutdown)} "
            f"(bounded by {format_duration(spec.shutdown_timeout)})"
        )
    if not spec.policy.rules:
        lines.append("retry rules: none; any failure is permanent")
        return "\n".join(lines) + "\n"
    lines.append("retry rules (checked in this order, first match wins):")
    for number, rule in enumerate(spec.policy.rules, start=1):
        lines.append(f"  {number}. {rule.describe()}")
        count = rule.retries if rule.retries is not None else _SHOWN_FOR_INF
        delays = " ".join(format_duration(d) for d in rule.backoff.schedule(count))
        suffix = " …" if rule.retries is None else ""
        lines.append(f"     delays: {delays}{suffix}")
    lines.append("any other failure is permanent")
    return "\n".join(lines) + "\n"


def describe_group(group: GroupSpec) -> str:
    """Start order by DAG level, every task's policy, then the shutdown order."""
    lines = ["start order (tasks on one level start together):"]
    for level, names in enumerate(group.levels()):
        lines.append(f"  {level}. {', '.join(names)}")
    for task in group.tasks:
        lines.append("")
        lines += describe_plan(task.spec).rstrip("\n").split("\n")
        if task.depends_on:
            waits = ", ".join(f"{name} {cond.value}" for name, cond in task.depends_on)
            lines.append(f"depends on:  {waits}")
        if task.ready is not None:
            probe = task.ready
            how = (
                f"stdout matches /{probe.stdout}/"
                if probe.stdout is not None
                else f"sh -c {shlex.quote(probe.command or '')} succeeds, every "
                f"{format_duration(probe.interval)}"
            )
            lines.append(f"ready when:  {how}, within {format_duration(probe.timeout)}")
    lines.append("")
    lines.append(
        f"shutdown order (hooks, within {format_duration(group.shutdown_timeout)} in all): "
        + ", ".join(group.shutdown_order())
    )
    return "\n".join(lines) + "\n"
