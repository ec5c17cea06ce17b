"""Group sources of plain command strings → a validated GroupSpec: ``-t NAME=COMMAND``
and Procfiles (foreman's format). Every error is a ConfigError naming the source and,
for a file, the line."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from longrun_cli.cli.textfile import ConfigError, read_text
from longrun_cli.cli.toml_values import shell
from longrun_cli.policy.errors import SpecError, quote
from longrun_cli.policy.group import GroupSpec, GroupTask
from longrun_cli.policy.taskspec import TaskSpec

StrPath = str | os.PathLike[str]

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# foreman's names, and dots (web.1) as -t takes them.
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_.-]+):\s*(.+)$")


# --- -t NAME=COMMAND ---------------------------------------------------------------


def from_inline(
    definitions: Sequence[str], shutdown_timeout: int, kill_after: int | None
) -> GroupSpec:
    tasks: list[GroupTask] = []
    seen: set[str] = set()
    for definition in definitions:
        name, equals, command = definition.partition("=")
        name = name.strip()
        if not equals or not NAME.match(name):
            raise ConfigError(
                f"-t {definition!r}: expected NAME=COMMAND with NAME made of letters, "
                "digits, '_', '.' or '-'"
            )
        if not command.strip():
            raise ConfigError(f"-t {definition!r}: empty command")
        if name in seen:
            raise ConfigError(f"-t {definition!r}: duplicate task name {name!r}")
        seen.add(name)
        tasks.append(GroupTask(_plain_spec(name, command, kill_after)))
    return _group(tasks, shutdown_timeout, "-t")


# --- Procfile ----------------------------------------------------------------------


def from_procfile(path: StrPath, shutdown_timeout: int, kill_after: int | None) -> GroupSpec:
    text = read_text(path)
    tasks: list[GroupTask] = []
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if match is None:
            name, colon, _ = line.partition(":")
            if colon and name.strip() and not NAME.match(name.strip()):
                raise ConfigError(
                    f"{path}:{number}: process name {quote(name.strip())} may only use "
                    "letters, digits, '_', '.' and '-'"
                )
            raise ConfigError(
                f"{path}:{number}: expected 'name: command', got {quote(raw.strip())}"
            )
        name, command = match.group(1), match.group(2)
        if name in lines:
            raise ConfigError(
                f"{path}:{number}: duplicate process name {name!r} (first on line {lines[name]})"
            )
        lines[name] = number
        try:
            tasks.append(GroupTask(_plain_spec(name, command, kill_after)))
        except SpecError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
    return _group(tasks, shutdown_timeout, str(path))


def _plain_spec(name: str, command: str, kill_after: int | None) -> TaskSpec:
    if kill_after is None:
        return TaskSpec(name=name, argv=shell(command))
    return TaskSpec(name=name, argv=shell(command), kill_after=kill_after)


def _group(tasks: list[GroupTask], shutdown_timeout: int, source: str) -> GroupSpec:
    if not tasks:
        raise ConfigError(f"{source}: no tasks defined")
    try:
        return GroupSpec(tuple(tasks), shutdown_timeout)
    except SpecError as exc:
        raise ConfigError(f"{source}: {exc}") from None
