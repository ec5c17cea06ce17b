"""What the shell completes for an option or argument (click's ``shell_complete``).

Named when the commands are declared, run only when the shell asks: each imports
what it needs itself, so a start of longrun pays for none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click


def complete_signals(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Signal names for --stop-signal, as kill -l spells them."""
    import signal

    names = sorted(
        s.name.removeprefix("SIG") for s in signal.Signals if not s.name.startswith("SIG_")
    )
    return [name for name in names if name.startswith(incomplete.upper().removeprefix("SIG"))]


def complete_files(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """Let the shell complete a file name (group FILE, --procfile)."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def complete_command(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """After ``exec --``: a program on PATH (or a path) first, then file names."""
    from click.shell_completion import CompletionItem

    if ctx.params.get("command") or "/" in incomplete:
        return [CompletionItem(incomplete, type="file")]
    import os

    found: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        try:
            entries = os.scandir(directory or ".")
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith(incomplete) and os.access(entry.path, os.X_OK):
                    found.add(entry.name)
    return [CompletionItem(name) for name in sorted(found)]
