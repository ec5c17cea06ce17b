"""What users bring from foreman and honcho: env files, PORT and replicas, applied to a group.

Precedence of a task's environment, lowest first: longrun's own environment, the
runner's env files (TOML ``[runner] env_file``, then ``--env-file``), the task's
env files, the PORT longrun assigns, the task's ``env``. A Procfile or ``-t``
group reads ``./.env`` when it exists, unless ``--env-file`` is given, and gets
PORT as foreman assigns it; a TOML group gets PORT only with ``[runner] port``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from longrun_cli.cli.envfiles import read_env_files
from longrun_cli.cli.textfile import ConfigError
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.group import GroupSpec
from longrun_cli.policy.replicas import expand

DEFAULT_PORT = 5000  # foreman's
DOTENV = ".env"


class Conventions(NamedTuple):
    """The command line's share: ``--env-file``, ``--port``, ``-c``."""

    env_files: tuple[str, ...] = ()
    port: int | None = None
    scales: Mapping[str, int] = {}


def apply(
    group: GroupSpec,
    conventions: Conventions,
    *,
    plain: bool,
    environ: Mapping[str, str] = os.environ,
) -> GroupSpec:
    """``plain``: a Procfile or ``-t`` group (./.env and PORT by default)."""
    common = list(group.env_files) + list(conventions.env_files)
    if plain and not conventions.env_files and os.path.isfile(DOTENV):
        common = [DOTENV]
    base = conventions.port if conventions.port is not None else group.port
    asked = base is not None
    cache: dict[tuple[str, ...], dict[str, str]] = {}
    tasks = []
    for task in group.tasks:
        paths = (*common, *task.spec.env_files)
        if paths not in cache:
            cache[paths] = read_env_files(paths, environ)
        if not cache[paths] and not task.spec.file_env and paths == task.spec.env_files:
            tasks.append(task)  # nothing to add: no copy (a Procfile of 2,000 tasks)
            continue
        spec = task.spec._replace(file_env=cache[paths], env_files=paths)
        tasks.append(replace(task, spec=spec))
    if plain and base is None:
        base = _port_from({**environ, **cache.get(tuple(common), {})})
    try:
        return replace(group, tasks=expand(tasks, conventions.scales, base, ports_asked=asked))
    except SpecError as exc:
        raise ConfigError(str(exc)) from None


def _port_from(environment: Mapping[str, str]) -> int:
    text = environment.get("PORT")
    if text is None:
        return DEFAULT_PORT
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"PORT {quote(text)} (the base port) is not a port number; use --port")
    return int(text)


def parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise ConfigError(f"--port: expected a port number from 1 to 65535, got {quote(text)}")
    return int(text)


def conventions_from(
    env_files: Sequence[str], port: str | None, concurrency: Sequence[str]
) -> Conventions:
    from longrun_cli.policy.replicas import parse_concurrency

    try:
        scales = parse_concurrency(concurrency)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    return Conventions(tuple(env_files), parse_port(port) if port is not None else None, scales)
