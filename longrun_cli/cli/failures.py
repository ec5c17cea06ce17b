"""longrun's own failures before any task runs: closed standard streams, usage errors.

Imported only when one happens, so that a normal start does not pay for it.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import NoReturn

import click

from longrun_cli.policy.status import EXIT_USAGE


def reopen_closed_streams() -> None:
    """Put /dev/null where the caller closed stdin, stdout or stderr (``2>&-``).

    Otherwise the next descriptor longrun opens (a pipe to a command) would
    become its stdout or stderr, and log lines would land in that pipe. The
    command inherits /dev/null there too, as it would under systemd.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # the lower ones are open: move it into place
                os.dup2(opened, fd)
                os.close(opened)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def usage_error(message: str, argv: list[str] | None) -> NoReturn:
    """One line and 125; JSON when the command line asked for JSON logs."""
    from longrun_cli.cli.render import LogRenderer

    words = sys.argv[1:] if argv is None else argv
    options = words[: words.index("--")] if "--" in words else words
    json_mode = "--log-format=json" in options or any(
        pair == ("--log-format", "json") for pair in itertools.pairwise(options)
    )
    LogRenderer("json" if json_mode else "text", 0).error(message)
    sys.exit(EXIT_USAGE)


def usage_hint(exc: click.ClickException) -> str:
    """What to do instead, for the mistakes people make with ``group``."""
    ctx = getattr(exc, "ctx", None)
    if ctx is None or ctx.info_name != "group":
        return ""
    commands = getattr(ctx.find_root().command, "commands", {})
    if isinstance(exc, click.NoSuchOption) and exc.option_name in _options(
        commands, "exec"
    ) - _options(commands, "group"):
        return f" ({exc.option_name} is an exec option: set it per task in a TOML file)"
    if isinstance(exc, click.UsageError) and "unexpected extra argument" in exc.message:
        return " (group takes one FILE; to run commands, use -t NAME=COMMAND)"
    return ""


def _options(commands: dict[str, click.Command], name: str) -> set[str]:
    found = commands.get(name)
    return {option for param in found.params for option in param.opts} if found else set()
