"""``longrun group`` option values → a GroupSpec from exactly one source."""

from __future__ import annotations

from collections.abc import Sequence

from longrun_cli.cli.config import ConfigError, from_inline, from_procfile, from_toml
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import DEFAULT_SHUTDOWN_TIMEOUT, GroupSpec

DEFAULT_FILE = "longrun.toml"


def load_group(
    file: str | None,
    inline: Sequence[str],
    procfile: str | None,
    shutdown_timeout: str | None,
    kill_after: str | None,
) -> GroupSpec:
    sources = [
        name for name, given in (("FILE", file), ("-t", inline), ("--procfile", procfile)) if given
    ]
    if len(sources) > 1:
        raise ConfigError(f"give one source of tasks, not {' and '.join(sources)}")
    bound = _duration("--shutdown-timeout", shutdown_timeout)
    if bound is not None and bound <= 0:
        raise ConfigError(f"--shutdown-timeout must be > 0, got {shutdown_timeout!r}")
    grace = _duration("--kill-after", kill_after)
    if inline:
        return from_inline(inline, bound or DEFAULT_SHUTDOWN_TIMEOUT, grace)
    if procfile:
        return from_procfile(procfile, bound or DEFAULT_SHUTDOWN_TIMEOUT, grace)
    return from_toml(file or DEFAULT_FILE, bound, grace)


def _duration(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except SpecError as exc:
        raise ConfigError(f"{option}: {exc}") from None
