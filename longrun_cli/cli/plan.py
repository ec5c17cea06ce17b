"""``--dry-run``: the resolved plan, every rule with its backoff schedule.

As text for people, or as JSON (``--log-format json``) for programs; the exec
JSON plan carries ``arguments``, the canonical ``longrun exec`` command line
that builds the same plan again.
"""

from __future__ import annotations

import os
import shlex
from datetime import UTC
from typing import TYPE_CHECKING, Any

from longrun_cli.policy.backoff import format_multiplier
from longrun_cli.policy.duration import format_duration
from longrun_cli.policy.signals import signal_name
from longrun_cli.policy.taskspec import TaskSpec

if TYPE_CHECKING:
    from longrun_cli.policy.group import GroupSpec
    from longrun_cli.policy.lockurl import LockSpec
    from longrun_cli.policy.rule import RetryRule

# How many delays to show for a rule with unlimited retries.
_SHOWN_FOR_INF = 8


def describe_plan(spec: TaskSpec) -> str:
    def dur(value: int | None) -> str:
        return _duration_or_none(value) or "none"

    schedule = f"every {dur(spec.interval)}" if spec.interval else "once"
    first = f"after {format_duration(spec.delay)}" if spec.delay else "now"
    if spec.schedule is not None:
        zone = spec.schedule.zone_name or "local time"
        schedule, first = f"cron {spec.schedule.text!r} ({zone})", "at the first fire time"
    lines = [
        f"task:        {spec.name}",
        f"command:     {shlex.join(spec.argv)}{_command_check(spec)}",
        f"schedule:    {schedule} (first run {first})",
        f"timeout:     {dur(spec.timeout)} per attempt",
        f"deadline:    {dur(spec.deadline)}",
        f"stop:        {signal_name(spec.stop_signal)}, then KILL after "
        f"{format_duration(spec.kill_after)}"
        + (" (foreground: the command alone, not its group)" if spec.foreground else ""),
    ]
    success = sorted({0} | spec.policy.success_codes)
    lines.append("success:     exit " + ",".join(str(code) for code in success))
    if spec.schedule is not None:
        lines.append(f"next fires:  {', '.join(_next_fires(spec))}")
    if spec.policy.jitter:
        lines.append(f"jitter:      each delay drawn from [d×{1 - spec.policy.jitter:g}, d]")
    if spec.cwd is not None:
        missing = "" if os.path.isdir(spec.cwd) else "  (not found: the run would fail, 127)"
        lines.append(f"cwd:         {spec.cwd}{missing}")
    if spec.env:
        shown = " ".join(f"{key}={shlex.quote(value)}" for key, value in spec.env.items())
        lines.append(f"env:         {shown}")
    if spec.env_files:
        # Names only: an env file is where secrets live, and plans end up in CI logs.
        keys = ", ".join(sorted(spec.file_env)) or "nothing"
        lines.append(f"env files:   {', '.join(spec.env_files)} (set {keys}; values not shown)")
    if spec.ready is not None:
        lines.append(f"ready when:  {spec.ready.what()}, tried every 1s (then systemd's READY=1)")
    if spec.health is not None:
        lines.append(f"health:      {spec.health.describe()} (WATCHDOG=1 only while healthy)")
    if spec.lock is not None:
        lines.append(f"lock:        {spec.lock.describe()}")
    if spec.state_file is not None:
        lines.append(
            f"state file:  {spec.state_file} (budgets and backoff survive a restart of longrun)"
        )
    if spec.breaker is not None:
        lines.append(
            f"breaker:     where the task would end, the circuit opens: {spec.breaker.describe()}"
        )
    if spec.ping:
        lines.append(f"ping:        {spec.ping} (/start, success, /fail with the stderr tail)")
    if spec.on_failure:
        lines.append(
            f"on failure:  sh -c {shlex.quote(spec.on_failure)} (with the last 50 stderr lines)"
        )
    if spec.shutdown:
        lines.append(
            f"shutdown:    sh -c {shlex.quote(spec.shutdown)} "
            f"(bounded by {format_duration(spec.shutdown_timeout)})"
        )
    if not spec.policy.rules:
        lines.append("retry rules: none; any failure is permanent")
        return "\n".join(lines) + "\n"
    lines.append("retry rules (checked in this order, first match wins):")
    width = len(str(len(spec.policy.rules)))  # 1. … 10. line up
    for number, rule in enumerate(spec.policy.rules, start=1):
        lines.append(f"  {number:>{width}}. {rule.describe()}")
        delays = " ".join(format_duration(d) for d in _shown_delays(rule))
        suffix = " …" if rule.retries is None else ""
        lines.append(f"  {'':>{width}}  delays: {delays}{suffix}")
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
            how = probe.describe()
            lines.append(f"ready when:  {how}, within {format_duration(probe.timeout)}")
    lines.append("")
    if group.lock is not None:
        lines.append(f"lock:        the whole group, {group.lock.describe()}")
    lines.append(
        f"shutdown order (hooks, within {format_duration(group.shutdown_timeout)} in all): "
        + ", ".join(group.shutdown_order())
    )
    return "\n".join(lines) + "\n"


def _command_check(spec: TaskSpec) -> str:
    """What a dry run can tell of the command without running it: is it there at all?"""
    import shutil

    command = spec.argv[0]
    if "/" in command:
        path = os.path.join(spec.cwd or "", command)
        return "" if os.path.exists(path) else "  (not found: the run would fail, 127)"
    found = shutil.which(command, path=spec.env.get("PATH", os.environ.get("PATH")))
    return "" if found else "  (not found on PATH: the run would fail, 127)"


def to_json(record: dict[str, Any]) -> str:
    """One JSON document on one line; ASCII, so any argv (even undecodable bytes) prints."""
    import json

    return json.dumps(record) + "\n"


def _duration_or_none(value: int | None) -> str | None:
    return None if value is None else format_duration(value)


def _shown_delays(rule: RetryRule) -> list[int]:
    return rule.backoff.schedule(rule.retries if rule.retries is not None else _SHOWN_FOR_INF)


def plan_record(spec: TaskSpec) -> dict[str, Any]:
    """One task's plan as JSON-ready data; durations in the Go syntax longrun reads."""
    rules: list[dict[str, Any]] = []
    for rule in spec.policy.rules:
        matcher = rule.matcher
        rules.append(
            {
                "match": matcher.describe(),
                "exit_codes": sorted(matcher.exit_codes) if matcher.exit_codes else None,
                "stderr": matcher.stderr,
                "signals": [signal_name(s) for s in sorted(matcher.signals)]
                if matcher.signals
                else None,
                "timeout": matcher.timeout,
                "unhealthy": matcher.unhealthy,
                "retries": rule.retries,
                "backoff": {
                    "initial": format_duration(rule.backoff.initial),
                    "max": format_duration(rule.backoff.max_delay),
                    "multiplier": rule.backoff.multiplier,
                },
                "delays": [format_duration(d) for d in _shown_delays(rule)],
            }
        )
    return {
        "task": spec.name,
        "command": list(spec.argv),
        "interval": _duration_or_none(spec.interval),
        "delay": format_duration(spec.delay),
        "timeout": _duration_or_none(spec.timeout),
        "deadline": _duration_or_none(spec.deadline),
        "stop_signal": signal_name(spec.stop_signal),
        "kill_after": format_duration(spec.kill_after),
        "foreground": spec.foreground,
        "success_exit_codes": sorted({0} | spec.policy.success_codes),
        "jitter": spec.policy.jitter,
        "shutdown": spec.shutdown,
        "on_failure": spec.on_failure,
        "ping": spec.ping,
        "circuit_breaker": None
        if spec.breaker is None
        else {
            "cooldown": format_duration(spec.breaker.cooldown),
            "max": format_duration(spec.breaker.max_cooldown),
        },
        "shutdown_timeout": format_duration(spec.shutdown_timeout),
        "health": None
        if spec.health is None
        else {
            spec.health.probe.kind: getattr(spec.health.probe, spec.health.probe.kind),
            "interval": format_duration(spec.health.interval),
            "timeout": format_duration(spec.health.timeout),
            "failures": spec.health.failures,
        },
        "state_file": spec.state_file,
        "lock": _lock_record(spec.lock),
        "schedule": None
        if spec.schedule is None
        else {
            "cron": spec.schedule.text,
            "timezone": spec.schedule.zone_name,
            "next": _next_fires(spec),
        },
        "env_files": list(spec.env_files),
        "env_file_keys": sorted(spec.file_env),  # the values are not shown: secrets
        "rules": rules,
    }


def exec_plan_record(spec: TaskSpec) -> dict[str, Any]:
    ready = None
    if spec.ready is not None:
        ready = {spec.ready.kind: getattr(spec.ready, spec.ready.kind), "interval": "1s"}
    return {**plan_record(spec), "ready": ready, "arguments": exec_arguments(spec)}


def group_plan_record(group: GroupSpec) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for task in group.tasks:
        record = plan_record(task.spec)
        record["depends_on"] = {name: cond.value for name, cond in task.depends_on}
        probe = task.ready
        record["ready"] = (
            None
            if probe is None
            else {
                probe.kind: getattr(probe, probe.kind),
                "interval": format_duration(probe.interval),
                "timeout": format_duration(probe.timeout),
            }
        )
        record["cwd"] = task.spec.cwd
        record["env"] = dict(task.spec.env)
        tasks.append(record)
    return {
        "lock": _lock_record(group.lock),
        "start_order": group.levels(),
        "tasks": tasks,
        "shutdown_order": group.shutdown_order(),
        "shutdown_timeout": format_duration(group.shutdown_timeout),
    }


def _next_fires(spec: TaskSpec, count: int = 5) -> list[str]:
    """The schedule's next fire times from now, ISO 8601 in its zone."""
    import itertools
    from datetime import datetime

    from longrun_cli.policy.schedule import fire_times

    assert spec.schedule is not None
    fires = fire_times(spec.schedule, datetime.now(UTC))
    return [fire.isoformat() for fire in itertools.islice(fires, count)]


def exec_arguments(spec: TaskSpec) -> list[str]:
    """The ``longrun exec`` arguments that build ``spec`` again, each option as ``--name=value``.

    Only for specs that exec options can express (one code, signal, regex or
    timeout per rule), which every spec exec itself builds is.
    """
    from longrun_cli.policy.spec import escape_field, format_budget

    args = [f"--name={spec.name}"]
    for option, value in (
        ("--interval", spec.interval),
        ("--timeout", spec.timeout),
        ("--deadline", spec.deadline),
    ):
        if value is not None:
            args.append(f"{option}={format_duration(value)}")
    args += [
        f"--delay={format_duration(spec.delay)}",
        f"--stop-signal={signal_name(spec.stop_signal)}",
        f"--kill-after={format_duration(spec.kill_after)}",
        f"--shutdown-timeout={format_duration(spec.shutdown_timeout)}",
        f"--jitter={format_multiplier(spec.policy.jitter)}",
    ]
    if spec.shutdown is not None:
        args.append(f"--shutdown={spec.shutdown}")
    if spec.on_failure is not None:
        args.append(f"--on-failure={spec.on_failure}")
    if spec.ping is not None:
        args.append(f"--ping={spec.ping}")
    if spec.breaker is not None:
        cooldown, maximum = spec.breaker
        args.append(f"--circuit-breaker={format_duration(cooldown)},{format_duration(maximum)}")
    args += _probe_arguments(spec)
    args += [f"--env-file={path}" for path in spec.env_files]
    if spec.schedule is not None:
        args.append(f"--schedule={spec.schedule.text}")
        if spec.schedule.zone_name is not None and "CRON_TZ=" not in spec.schedule.text:
            args.append(f"--timezone={spec.schedule.zone_name}")
    if spec.foreground:
        args.append("--foreground")
    if spec.policy.success_codes:
        from longrun_cli.policy.matcher import format_codes

        args.append(f"--success-exit-code={format_codes(spec.policy.success_codes)}")
    for rule in spec.policy.rules:
        budget = format_budget(rule.retries, rule.backoff)
        matcher = rule.matcher
        if matcher.timeout:
            args.append(f"--retry-timeout={budget}")
        elif matcher.unhealthy:
            args.append(f"--retry-unhealthy={budget}")
        elif len(matcher.signals or ()) == 1 and matcher.stderr is None and not matcher.exit_codes:
            assert matcher.signals is not None
            (number,) = matcher.signals
            args.append(f"--retry-signal={signal_name(number)}:{budget}")
        elif matcher.stderr is not None and not matcher.signals and not matcher.exit_codes:
            args.append(f"--retry-stderr={escape_field(matcher.stderr)}:{budget}")
        elif len(matcher.exit_codes or ()) == 1 and matcher.stderr is None and not matcher.signals:
            assert matcher.exit_codes is not None
            (code,) = matcher.exit_codes
            args.append(f"--retry-exit-code={code}:{budget}")
        else:
            raise ValueError(f"no exec option expresses the rule {rule.describe()!r}")
    return [*args, "--", *spec.argv]


def _probe_arguments(spec: TaskSpec) -> list[str]:
    """--ready, --health and its settings, --state-file."""
    args: list[str] = []
    if spec.ready is not None or spec.health is not None:
        from longrun_cli.policy.probes import probe_text

        if spec.ready is not None:
            args.append(f"--ready={probe_text(spec.ready)}")
        if spec.health is not None:
            args += [
                f"--health={probe_text(spec.health.probe)}",
                f"--health-interval={format_duration(spec.health.interval)}",
                f"--health-timeout={format_duration(spec.health.timeout)}",
                f"--health-failures={spec.health.failures}",
            ]
    if spec.state_file is not None:
        args.append(f"--state-file={spec.state_file}")
    if spec.lock is not None:
        args.append(f"--lock={spec.lock.url}")
        if spec.lock.wait is not None:
            args.append(f"--lock-wait={format_duration(spec.lock.wait)}")
        if spec.lock.kind == "etcd":
            args.append(f"--lock-ttl={format_duration(spec.lock.ttl)}")
    return args


def _lock_record(lock: LockSpec | None) -> dict[str, Any] | None:
    if lock is None:
        return None
    return {
        "url": lock.url,
        "kind": lock.kind,
        "wait": _duration_or_none(lock.wait),
        "ttl": format_duration(lock.ttl) if lock.kind == "etcd" else None,
    }
