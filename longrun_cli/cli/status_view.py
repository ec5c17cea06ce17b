"""How ``longrun ctl`` shows what the group answers: a status table, JSON, log lines.

A plain table and plain lines for a one-shot query (no rich: ``ctl status``
must start fast); rich only for ``status --watch`` on a terminal.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from longrun_cli.policy.errors import printable

COLUMNS = ("TASK", "STATE", "PID", "RUN", "ATTEMPT", "LAST EXIT", "IN STATE", "NEXT", "READY")
# ANSI colours per state (a glance tells what is healthy, waiting or wrong).
STATE_COLOURS = {
    "waiting": "36",
    "starting": "36",
    "running": "32",
    "ready": "1;32",
    "backoff": "33",
    "sleeping": "34",
    "succeeded": "32",
    "failed": "1;31",
    "exhausted": "1;31",
    "stopped": "2",
}
_RICH_STYLES = {
    "36": "cyan",
    "32": "green",
    "1;32": "bold green",
    "33": "yellow",
    "34": "blue",
    "1;31": "bold red",
    "2": "dim",
}


def colour(stream: IO[str]) -> bool:
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def duration(seconds: float | None) -> str:
    """A short human duration: 0.4s, 42s, 12m05s, 3h04m, 2d03h; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def cells(task: dict[str, Any], elapsed: float = 0.0) -> list[str]:
    """One row as text; ``elapsed``: seconds since the row was received (a live countdown)."""
    ready = task.get("ready")
    next_in = task.get("next_in")
    return [
        printable(str(task.get("name", "?"))),
        str(task.get("state", "?")),
        "-" if task.get("pid") is None else str(task["pid"]),
        str(task.get("run", 0)),
        str(task.get("attempt", 0)),
        "-" if task.get("last_exit") is None else printable(str(task["last_exit"])),
        duration(float(task.get("in_state", 0.0)) + elapsed),
        duration(None if next_in is None else float(next_in) - elapsed),
        "-" if ready is None else ("yes" if ready else "no"),
    ]


def table(response: dict[str, Any], *, colour: bool) -> str:
    rows = [cells(task) for task in response.get("tasks", [])]
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for row in rows:
        padded = [text.ljust(width) for text, width in zip(row, widths, strict=True)]
        if colour and row[1] in STATE_COLOURS:
            padded[1] = f"\x1b[{STATE_COLOURS[row[1]]}m{padded[1]}\x1b[0m"
        lines.append("  ".join(padded).rstrip())
    if response.get("lock"):  # --lock: holder or standby, before the tasks
        lines.insert(0, f"lock: {printable(str(response['lock']))}")
    return "\n".join(lines) + "\n"


def as_json(response: dict[str, Any]) -> str:
    shown = {key: value for key, value in response.items() if key not in ("ok", "version")}
    return json.dumps(shown, separators=(",", ":"))


def watch(first: dict[str, Any], responses: Iterator[dict[str, Any]], *, json_lines: bool) -> None:
    """Until the group ends: a live table on a terminal, else one JSON line per change."""
    if json_lines or not sys.stdout.isatty():
        for response in itertools.chain([first], responses):
            print(as_json(response), flush=True)
        return
    _live(first, responses)


def _live(first: dict[str, Any], responses: Iterator[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    latest: list[tuple[dict[str, Any], float]] = [(first, time.monotonic())]

    def render() -> Table:
        response, received = latest[0]
        elapsed = time.monotonic() - received
        group = printable(str(response.get("group", "")))
        shown = Table(
            title=f"longrun group {group} (pid {response.get('pid')})"
            + (f" — {printable(str(response['lock']))}" if response.get("lock") else ""),
            title_justify="left",
        )
        for column in COLUMNS:
            shown.add_column(column, no_wrap=True)
        for task in response.get("tasks", []):
            row = cells(task, elapsed)
            style = _RICH_STYLES.get(STATE_COLOURS.get(row[1], ""), "")
            shown.add_row(*row[:1], f"[{style}]{row[1]}[/]" if style else row[1], *row[2:])
        return shown

    console = Console()
    with Live(get_renderable=render, console=console, refresh_per_second=4, transient=False):
        for response in responses:
            latest[0] = (response, time.monotonic())
    console.print("[dim]the group has ended[/]")


def print_logs(first: dict[str, Any], responses: Iterator[dict[str, Any]]) -> None:
    """Each line behind its task's name, padded as the group pads them."""
    from longrun_cli.cli.render import output_prefixes

    names = [str(name) for name in first.get("tasks", [])]
    # The prefixes the group itself prints: padded, a colour per task on a terminal.
    prefixes = output_prefixes(names, enabled=True, stream=sys.stdout) if names else {}
    out = sys.stdout.buffer
    for response in itertools.chain([first], responses):
        for item in response.get("lines", []):
            name = str(item.get("task", ""))
            line = str(item.get("line", "")).encode("utf-8", "surrogateescape")
            out.write(prefixes.get(name, b"") + line + b"\n")
        out.flush()
        dropped = response.get("dropped")
        if dropped:
            print(
                f"longrun ctl: {dropped} lines dropped (this reader was too slow)", file=sys.stderr
            )
        if not response.get("more"):
            return
