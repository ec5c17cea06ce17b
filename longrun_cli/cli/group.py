"""``longrun group`` option values → a GroupSpec from exactly one source."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

from longrun_cli.cli.config import ConfigError, from_inline, from_procfile, from_toml
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import DEFAULT_SHUTDOWN_TIMEOUT, GroupSpec

DEFAULT_FILE = "longrun.toml"


class ControlSettings(NamedTuple):
    """Where a running group serves ``longrun ctl``."""

    name: str
    path: str
    own_directory: bool  # the default path: longrun keeps its directory private


def group_name(file: str | None, given: str | None, configured: str | None) -> str:
    """``--name``, else ``[runner] name``, else the group file's directory's name."""
    if given:
        return given
    if configured:
        return configured
    directory = os.path.dirname(os.path.abspath(file)) if file else os.getcwd()
    return os.path.basename(directory) or "longrun"


def control_settings(
    group: GroupSpec, file: str | None, name: str | None, control: str | None
) -> ControlSettings:
    """Raises ControlError (125) for a name that cannot name a socket file."""
    from longrun_cli.control.paths import check_name, default_path

    chosen = check_name(group_name(file, name, group.name))
    path = control or group.control
    if path:
        return ControlSettings(chosen, path, own_directory=False)
    return ControlSettings(chosen, default_path(chosen), own_directory=True)


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
