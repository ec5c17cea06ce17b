"""The one place that formats output: log lines (text, json, colour) and the dry-run plan.

rich is imported only for a colour terminal, so plain runs start fast.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from longrun_cli.engine.events import Event, Level
from longrun_cli.policy.errors import printable

_LEVEL_NAMES = {
    Level.DEBUG: "debug",
    Level.INFO: "info",
    Level.WARNING: "warn",
    Level.ERROR: "error",
}
_LEVEL_STYLES = {
    Level.DEBUG: "dim",
    Level.INFO: "cyan",
    Level.WARNING: "yellow",
    Level.ERROR: "bold red",
}


def threshold(verbose: int, quiet: int) -> int:
    """``-v`` shows debug events; ``-q`` only errors; ``-qq`` nothing."""
    level = Level.INFO.value - 10 * verbose + 20 * quiet
    return max(Level.DEBUG.value, level)


def resolve_format(requested: str, stream: IO[str]) -> str:
    """``auto`` is colour on a terminal (unless NO_COLOR) and key=value text otherwise."""
    if requested != "auto":
        return requested
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if os.environ.get("FORCE_COLOR"):
        return "color"
    # NO_COLOR removes the colour only (rich honours it): still the human format.
    return "color" if tty else "text"


class LogRenderer:
    """Writes each event as one line on stderr, in one write, so lines never tear."""

    def __init__(self, log_format: str, min_level: int, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._format = resolve_format(log_format, self._stream)
        self._min_level = min_level
        self._console: Any = None
        # Text lines carry time= when they go to a file or a pipe, not on a terminal
        # and not to the journal, which stamps every line itself.
        self._stamped = (
            self._format == "text"
            and not _is_terminal(self._stream)
            and not _to_journal(self._stream)
        )

    def emit(self, event: Event) -> None:
        if event.level.value < self._min_level:
            return
        if self._format == "json":
            line = self._json(event)
        elif self._format == "color":
            self._color(event)
            return
        else:
            line = self._text(event)
        self._write(line + "\n")

    def error(self, message: str) -> None:
        """longrun's own failure (bad usage): always shown, one line of printable text."""
        message = printable(message)
        if self._format == "json":
            import json

            line = {"time": _timestamp(), "level": "error", "event": "usage", "msg": message}
            self._write(json.dumps(line) + "\n")
        else:
            self._write(f"longrun: error: {message}\n")

    def _text(self, event: Event) -> str:
        parts = [
            "longrun:",
            *((f"time={_local_timestamp()}",) if self._stamped else ()),
            f"level={_LEVEL_NAMES[event.level]}",
            f"task={_logfmt(event.task)}",
            f"event={event.name}",
            f"msg={_logfmt(event.message)}",
        ]
        parts += [f"{key}={_logfmt(value)}" for key, value in event.fields if value is not None]
        return " ".join(parts)

    def _json(self, event: Event) -> str:
        import json

        record: dict[str, object] = {
            "time": _timestamp(),
            "level": _LEVEL_NAMES[event.level],
            "task": event.task,
            "event": event.name,
            "msg": event.message,
        }
        record.update(event.fields)
        return json.dumps(record, default=str)

    def _color(self, event: Event) -> None:
        from rich.console import Console
        from rich.text import Text

        if self._console is None:
            plain = bool(os.environ.get("NO_COLOR")) and not os.environ.get("FORCE_COLOR")
            self._console = Console(
                file=self._stream,
                highlight=False,
                soft_wrap=True,
                # NO_COLOR: the same human lines, without a single escape sequence.
                color_system=None if plain else "auto",
            )
        text = Text()
        text.append("longrun", style="dim")
        if event.task != "longrun":  # longrun's own events: not "longrun longrun ..."
            text.append(" " + printable(event.task), style="bold")
        text.append(" " + printable(event.message), style=_LEVEL_STYLES[event.level])
        for key, value in event.fields:
            if value is not None:
                text.append(f" {key}=", style="dim")
                text.append(printable(_plain(value)))
        self._console.print(text)

    def _write(self, line: str) -> None:
        try:
            self._stream.write(line)
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or full log destination must not change what longrun does.
            pass


def _plain(value: object) -> str:
    """A field's value as both formats write it: true/false, not True/False."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _logfmt(value: object) -> str:
    text = _plain(value)
    if text and not any(ch in text for ch in ' "=\\') and text.isprintable():
        return text
    escaped = printable(text.replace("\\", "\\\\").replace('"', '\\"'))
    return '"' + escaped + '"'


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _to_journal(stream: IO[str]) -> bool:
    """systemd's test: JOURNAL_STREAM names the device and inode of this very stream."""
    named = os.environ.get("JOURNAL_STREAM")
    if not named:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return named == f"{info.st_dev}:{info.st_ino}"


def _local_timestamp() -> str:
    """Local time with its offset, to the millisecond: 2026-11-28T21:37:48.123+01:00."""
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


# Colours for task prefixes on a terminal, as honcho and foreman use them.
_PREFIX_COLOURS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


def output_prefixes(
    names: list[str], *, enabled: bool, stream: IO[str] | None = None
) -> dict[str, bytes]:
    """``name | `` for each task, names padded to one width, coloured on a terminal."""
    if not enabled:
        return dict.fromkeys(names, b"")
    width = max(len(name) for name in names)
    target = stream if stream is not None else sys.stdout
    no_colour = bool(os.environ.get("NO_COLOR")) and not os.environ.get("FORCE_COLOR")
    colour = resolve_format("auto", target) == "color" and not no_colour
    prefixes: dict[str, bytes] = {}
    for position, name in enumerate(names):
        text = f"{name.ljust(width)} | "
        if colour:
            code = _PREFIX_COLOURS[position % len(_PREFIX_COLOURS)]
            text = f"\x1b[{code}m{name.ljust(width)} |\x1b[0m "
        prefixes[name] = text.encode()
    return prefixes
