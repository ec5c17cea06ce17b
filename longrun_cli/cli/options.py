"""Raw option values → a validated TaskSpec; every failure is a SpecError naming the value."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from longrun_cli.policy.decision import RetryPolicy
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.signals import parse_signal
from longrun_cli.policy.taskspec import TaskSpec

if TYPE_CHECKING:
    from longrun_cli.policy.breaker import Breaker
    from longrun_cli.policy.lockurl import LockSpec
    from longrun_cli.policy.rule import RetryRule

T = TypeVar("T")


class ExecOptions:
    """``longrun exec`` options exactly as typed, before any parsing."""

    # A plain class, not a NamedTuple: a NamedTuple's __new__ is compiled at run time,
    # on every start (~0.1 M instructions a field); this one comes compiled from the .pyc.
    __slots__ = (
        "circuit_breaker",
        "command",
        "deadline",
        "delay",
        "env_file",
        "foreground",
        "health",
        "health_failures",
        "health_interval",
        "health_timeout",
        "interval",
        "jitter",
        "kill_after",
        "lock",
        "lock_ttl",
        "lock_wait",
        "name",
        "on_failure",
        "ping",
        "ready",
        "retry_exit_code",
        "retry_signal",
        "retry_stderr",
        "retry_timeout",
        "retry_unhealthy",
        "schedule",
        "shutdown",
        "shutdown_timeout",
        "state_file",
        "stop_signal",
        "success_exit_code",
        "timeout",
        "timezone",
    )

    def __init__(
        self,
        *,
        command: Sequence[str],
        name: str | None = None,
        interval: str | None = None,
        delay: str | None = None,
        timeout: str | None = None,
        deadline: str | None = None,
        stop_signal: str = "TERM",
        kill_after: str = "10s",
        retry_exit_code: Sequence[str] = (),
        retry_stderr: Sequence[str] = (),
        retry_signal: Sequence[str] = (),
        retry_timeout: str | None = None,
        jitter: str = "0",
        success_exit_code: Sequence[str] = (),
        shutdown: str | None = None,
        shutdown_timeout: str = "30s",
        foreground: bool = False,
        env_file: Sequence[str] = (),
        schedule: str | None = None,
        timezone: str | None = None,
        on_failure: str | None = None,
        ping: str | None = None,
        circuit_breaker: str | None = None,
        ready: str | None = None,
        health: str | None = None,
        health_interval: str | None = None,
        health_timeout: str | None = None,
        health_failures: str | None = None,
        retry_unhealthy: str | None = None,
        state_file: str | None = None,
        lock: str | None = None,
        lock_wait: str | None = None,
        lock_ttl: str | None = None,
    ) -> None:
        self.command = command
        self.name = name
        self.interval = interval
        self.delay = delay
        self.timeout = timeout
        self.deadline = deadline
        self.stop_signal = stop_signal
        self.kill_after = kill_after
        self.retry_exit_code = retry_exit_code
        self.retry_stderr = retry_stderr
        self.retry_signal = retry_signal
        self.retry_timeout = retry_timeout
        self.jitter = jitter
        self.success_exit_code = success_exit_code
        self.shutdown = shutdown
        self.shutdown_timeout = shutdown_timeout
        self.foreground = foreground
        self.env_file = env_file
        self.schedule = schedule
        self.timezone = timezone
        self.on_failure = on_failure
        self.ping = ping
        self.circuit_breaker = circuit_breaker
        self.ready = ready
        self.health = health
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.health_failures = health_failures
        self.retry_unhealthy = retry_unhealthy
        self.state_file = state_file
        self.lock = lock
        self.lock_wait = lock_wait
        self.lock_ttl = lock_ttl


def build_task_spec(options: ExecOptions) -> TaskSpec:
    if not options.command or not options.command[0]:
        raise SpecError("missing COMMAND (usage: longrun exec [OPTIONS] -- COMMAND [ARG...])")
    policy = _policy(options) if _has_policy(options) else RetryPolicy()
    return TaskSpec(
        name=options.name if options.name is not None else os.path.basename(options.command[0]),
        argv=tuple(options.command),
        policy=policy,
        interval=_duration("--interval", options.interval),
        delay=_duration("--delay", options.delay) or 0,
        timeout=_duration("--timeout", options.timeout),
        deadline=_duration("--deadline", options.deadline),
        stop_signal=_named("--stop-signal", options.stop_signal, parse_signal),
        kill_after=_duration("--kill-after", options.kill_after) or 0,
        shutdown=options.shutdown or None,
        shutdown_timeout=_named("--shutdown-timeout", options.shutdown_timeout, parse_duration),
        foreground=options.foreground,
        on_failure=options.on_failure or None,
        ping=_ping(options.ping),
        breaker=_breaker(options.circuit_breaker),
        state_file=_state_file(options.state_file),
        lock=lock_spec(options.lock, options.lock_wait, options.lock_ttl),
        **_probes(options),
        **_env_files(options.env_file),
        **_schedule(options.schedule, options.timezone),
    )


def _breaker(text: str | None) -> Breaker | None:
    if text is None:
        return None
    from longrun_cli.policy.breaker import parse_breaker

    return parse_breaker(text)


def _probes(options: ExecOptions) -> dict[str, Any]:
    """--ready and --health (with its --health-* settings), when given."""
    if options.health is None:
        tuning = (options.health_interval, options.health_timeout, options.health_failures)
        if any(value is not None for value in tuning):
            raise SpecError(
                "--health-interval, --health-timeout and --health-failures need --health"
            )
        if options.retry_unhealthy is not None:
            raise SpecError("--retry-unhealthy needs --health")
        if options.ready is None:
            return {}
    # Imported only when a probe is given: start-up matters.
    from longrun_cli.policy.probes import HealthCheck, parse_failures, parse_probe

    found: dict[str, Any] = {}
    if options.ready is not None:
        found["ready"] = parse_probe(options.ready, "--ready")
    if options.health is not None:
        settings: dict[str, Any] = {
            "interval": _duration("--health-interval", options.health_interval),
            "timeout": _duration("--health-timeout", options.health_timeout),
        }
        if options.health_failures is not None:
            settings["failures"] = parse_failures(options.health_failures)
        probe = parse_probe(options.health, "--health")
        try:
            found["health"] = HealthCheck(
                probe, **{key: value for key, value in settings.items() if value is not None}
            )
        except SpecError as exc:
            raise SpecError(f"--health: {exc}") from None
    return found


def lock_spec(url: str | None, wait: str | None, ttl: str | None) -> LockSpec | None:
    """--lock with --lock-wait and --lock-ttl (exec's and group's)."""
    if url is None:
        if wait is not None or ttl is not None:
            raise SpecError("--lock-wait and --lock-ttl need --lock")
        return None
    from longrun_cli.policy.lockurl import parse_lock

    return parse_lock(url, _duration("--lock-ttl", ttl), _duration("--lock-wait", wait))


def _state_file(path: str | None) -> str | None:
    if path is None:
        return None
    if not path:
        raise SpecError("--state-file: empty path")
    return os.path.abspath(path)


def _ping(url: str | None) -> str | None:
    if not url:
        return None
    from longrun_cli.policy.group import check_http_url

    try:
        check_http_url(url)
    except SpecError as exc:
        raise SpecError(f"--ping: {str(exc).removeprefix('ready http ')}") from None
    return url


def _schedule(text: str | None, zone: str | None) -> dict[str, Any]:
    if text is None:
        if zone is not None:
            raise SpecError("--timezone applies to --schedule, which is not given")
        return {}
    from longrun_cli.cli.zones import local_zone
    from longrun_cli.policy.schedule import parse_schedule

    return {"schedule": parse_schedule(text, zone, local_zone())}


def _env_files(paths: Sequence[str]) -> dict[str, Any]:
    if not paths:
        return {}
    # Imported only when a file is named: most runs have none, and start-up matters.
    from longrun_cli.cli.envfiles import read_env_files

    return {"file_env": read_env_files(paths, os.environ), "env_files": tuple(paths)}


def _has_policy(options: ExecOptions) -> bool:
    return bool(
        options.retry_exit_code
        or options.retry_stderr
        or options.retry_signal
        or options.retry_timeout is not None
        or options.retry_unhealthy is not None
        or options.success_exit_code
        or options.jitter.strip() not in ("0", "")
    )


def _policy(options: ExecOptions) -> RetryPolicy:
    # The spec parsers are imported only when a rule is given: start-up matters.
    from longrun_cli.policy.spec import (
        parse_codes,
        parse_exit_code_rule,
        parse_signal_rule,
        parse_stderr_rule,
        parse_timeout_rule,
        parse_unhealthy_rule,
    )

    rules: list[RetryRule] = []
    for spec in options.retry_exit_code:
        rules += parse_exit_code_rule(spec)
    for spec in options.retry_stderr:
        rules.append(parse_stderr_rule(spec))
    for spec in options.retry_signal:
        rules += parse_signal_rule(spec)
    if options.retry_timeout is not None:
        rules.append(parse_timeout_rule(options.retry_timeout))
    if options.retry_unhealthy is not None:
        rules.append(parse_unhealthy_rule(options.retry_unhealthy))
    success: set[int] = set()
    for codes in options.success_exit_code:
        success |= _named("--success-exit-code", codes, parse_codes)
    return RetryPolicy.build(rules, frozenset(success), _jitter(options.jitter))


def _named(option: str, value: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(value)
    except SpecError as exc:
        raise SpecError(f"{option}: {exc}") from None


def _duration(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    return _named(option, value, parse_duration)


def _jitter(text: str) -> float:
    try:
        ratio = float(text)
    except ValueError:
        raise SpecError(
            f"--jitter: invalid ratio {quote(text)}: expected a number from 0 to 1"
        ) from None
    if not 0.0 <= ratio <= 1.0:
        raise SpecError(f"--jitter: invalid ratio {quote(text)}: must be between 0 and 1")
    return ratio
