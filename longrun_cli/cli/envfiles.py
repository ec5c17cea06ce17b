"""Env files (``--env-file``, ``env_file``, a group's ``./.env``), read as python-dotenv reads them.

The syntax is python-dotenv's (``export``, quotes, comments, ``${VAR}`` and
``${VAR:-default}``), through its own parser: longrun writes no dotenv parser.
Files are layered, each over the ones before: a ``${VAR}`` sees longrun's
environment and everything the earlier files and lines defined. A line the
parser cannot read is an error naming the file and the line (python-dotenv
itself only warns and skips it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping

from longrun_cli.cli.textfile import ConfigError, read_text
from longrun_cli.policy.errors import quote


def read_env_files(paths: Iterable[str], base: Mapping[str, str]) -> dict[str, str]:
    """What ``paths`` define, in order, later files winning; ``base``: for ``${VAR}`` only."""
    values: dict[str, str] = {}
    for path in paths:
        values.update(read_env_file(path, {**base, **values}))
    return values


def read_env_file(path: str, base: Mapping[str, str]) -> dict[str, str]:
    from dotenv.parser import parse_stream
    from dotenv.variables import parse_variables

    try:
        text = read_text(path)
    except ConfigError as exc:
        raise ConfigError(f"env file {exc}") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.splitlines()[0] if binding.original.string else ""
            raise ConfigError(
                f"{path}:{binding.original.line}: not a dotenv line: {quote(line.strip())}"
            )
        if binding.key is None or binding.value is None:
            continue  # a comment, a blank line, or a name without '=' (python-dotenv skips it)
        scope = {**base, **values}
        values[binding.key] = "".join(
            atom.resolve(scope) for atom in parse_variables(binding.value)
        )
    return values


def relative_to(path: str, directory: str) -> str:
    """An env file named in a TOML file is relative to that file's directory."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(directory, path))
