"""Man pages and shell completions generated from the live click application.

Regenerate both with ``python -m longrun_cli.cli.manpage`` from the repository
root; tests fail when the committed files differ from what this module produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from longrun_cli import __version__
from longrun_cli.cli.main import cli
from longrun_cli.cli.manpage_text import (
    ENVIRONMENT,
    EXAMPLES,
    EXIT_STATUS,
    GROUP_KEYS,
    SIGNALS,
    TOML_SCHEMA,
    VALUE_SYNTAX,
)

DATE = "2026-11-28"


def _command(name: str) -> click.Command:
    command = cli.get_command(click.Context(cli, info_name="longrun"), name)
    assert command is not None
    return command


def roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens and leading control characters."""
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    escaped = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in escaped)
    lines = [
        ("\\&" + line) if line.startswith((".", "'")) else line for line in escaped.split("\n")
    ]
    return "\n".join(lines)


def _header(name: str, summary: str) -> list[str]:
    return [
        f'.TH {name.upper()} 1 "{DATE}" "longrun {__version__}" "User Commands"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(summary)}",
    ]


def _tagged(pairs: list[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for tag, body in pairs:
        lines += [".TP", f"\\fB{roff(tag)}\\fR", roff(body)]
    return lines


def _options(command: click.Command) -> list[str]:
    ctx = click.Context(command, info_name=command.name)
    lines: list[str] = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = ", ".join(param.opts + param.secondary_opts)
        metavar = "" if param.is_flag or param.count else f" {param.make_metavar(ctx)}"
        help_text = param.help or ""
        if param.show_default and param.default is not None:
            help_text += f" Default: {param.default}."
        lines += [".TP", f"\\fB{roff(names)}\\fR{roff(metavar)}", roff(help_text)]
    return lines


def exec_page() -> str:
    command = _command("exec")
    lines = _header("longrun-exec", "run a command as a supervised task")
    lines += [
        ".SH SYNOPSIS",
        "\\fBlongrun exec\\fR [\\fIOPTIONS\\fR] \\fB\\-\\-\\fR \\fICOMMAND\\fR [\\fIARG\\fR...]",
        ".SH DESCRIPTION",
        roff(
            "Runs COMMAND (argv, no shell) once, or now and then every --interval on a "
            "fixed-rate grid. A failed attempt is retried only when a rule calls it "
            "transient; rules are checked in the order timeout, signal, stderr, exit code, "
            "and the first match wins. Each rule has its own budget of consecutive retries "
            "and its own exponential backoff; an interval task's successful tick resets "
            "every budget. Each attempt runs in its own process group, and nothing longrun "
            "started outlives it, even when longrun itself is killed with SIGKILL. "
            "longrun's own log lines go to stderr."
        ),
        ".SH OPTIONS",
        *_options(command),
        ".SH VALUE SYNTAX",
        *_tagged(VALUE_SYNTAX),
        ".SH EXIT STATUS",
        *_tagged(EXIT_STATUS),
        ".SH SIGNALS",
        roff(SIGNALS),
        ".SH ENVIRONMENT",
        *_tagged(ENVIRONMENT),
        ".SH EXAMPLES",
    ]
    for text, example in EXAMPLES:
        lines += [".PP", roff(text), ".PP", ".RS 4", ".nf", roff(example), ".fi", ".RE"]
    lines += [".SH SEE ALSO", "\\fBlongrun\\fR(1), \\fBtimeout\\fR(1), \\fBsystemd.service\\fR(5)"]
    return "\n".join(lines) + "\n"


def group_page() -> str:
    command = _command("group")
    lines = _header("longrun-group", "run several commands together under one runner")
    lines += [
        ".SH SYNOPSIS",
        "\\fBlongrun group\\fR [\\fIOPTIONS\\fR] [\\fIFILE\\fR]",
        ".br",
        "\\fBlongrun group\\fR [\\fIOPTIONS\\fR] \\fB\\-t\\fR \\fINAME\\fR=\\fICOMMAND\\fR ...",
        ".br",
        "\\fBlongrun group\\fR [\\fIOPTIONS\\fR] \\fB\\-\\-procfile\\fR \\fIFILE\\fR",
        ".SH DESCRIPTION",
        roff(
            "Starts every task at once, or as soon as its depends_on conditions hold. A task "
            "that succeeds does not stop the others. When one fails permanently, the runner "
            "sends the others their stop signal (SIGKILL after kill_after), waits until every "
            "task has stopped, then runs the shutdown hooks one at a time: dependents before "
            "what they depend on, ties last-declared first, all within the shutdown timeout. "
            "A hook that fails or hangs is logged and does not block the next. Each line of "
            "each task's stdout and stderr goes to longrun's stdout or stderr, prefixed with "
            "the task name; lines never interleave inside a line. Commands get /dev/null as "
            "stdin."
        ),
        ".SH OPTIONS",
        *_options(command),
        ".SH FILES",
        roff("./longrun.toml is read when no source is given. Its keys:"),
        ".PP",
        ".RS 4",
        ".nf",
        roff(TOML_SCHEMA.rstrip("\n")),
        ".fi",
        ".RE",
        *_tagged(GROUP_KEYS),
        ".PP",
        roff(
            "A Procfile has one 'name: command' per line, names made of letters, digits, '_', "
            "'.' and '-' (foreman's, and web.1); blank lines and lines starting with # are "
            "ignored. A Procfile or -t group reads ./.env when it exists, unless --env-file is "
            "given, and its tasks get PORT (see ENVIRONMENT)."
        ),
        ".SH EXIT STATUS",
        roff("The status of the first task that failed, by the rules of longrun-exec(1):"),
        *_tagged(EXIT_STATUS),
        ".SH SIGNALS",
        roff(SIGNALS.replace("the command's process group", "every task's process group")),
        ".SH CONTROL",
        roff(
            "Unless --no-control is given, the group serves a control socket for "
            "longrun-ctl(1): its state, restart, stop and start of one task, its last lines "
            "of output, shutdown. The socket is --control, else [runner] control, else "
            "$XDG_RUNTIME_DIR/longrun/NAME.sock, else /tmp/longrun-UID/NAME.sock; NAME is "
            "--name, else [runner] name, else the name of the group file's directory (with "
            "-t or --procfile: of the working directory). If a group of that name is already "
            "running, longrun exits 125 and names it. A task stopped by longrun ctl is no "
            "failure: the others go on, and the group ends, with status 0, when no task is "
            "left running or able to start without an operator."
        ),
        ".SH ENVIRONMENT",
        *_tagged(ENVIRONMENT),
        ".SH SEE ALSO",
        "\\fBlongrun\\fR(1), \\fBlongrun\\-exec\\fR(1), \\fBlongrun\\-ctl\\fR(1), "
        "\\fBhoncho\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


def main_page() -> str:
    lines = _header("longrun", "run commands as supervised tasks")
    lines += [
        ".SH SYNOPSIS",
        "\\fBlongrun\\fR [\\fB\\-\\-version\\fR] [\\fB\\-\\-help\\fR] \\fICOMMAND\\fR ...",
        ".SH DESCRIPTION",
        roff(cli.help or ""),
        ".SH COMMANDS",
    ]
    # Only the commands with a page of their own are cited (no longrun-completion(1)).
    paged = sorted(name.removeprefix("longrun-").removesuffix(".1") for name in _PAGED)
    ctx = click.Context(cli, info_name="longrun")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        lines += [".TP", f"\\fB{roff(name)}\\fR", roff(command.get_short_help_str(limit=200))]
        if name in paged:
            lines.append(f"See \\fBlongrun\\-{roff(name)}\\fR(1).")
    lines += [
        ".SH EXIT STATUS",
        *_tagged(EXIT_STATUS),
        ".SH SEE ALSO",
        ", ".join(f"\\fBlongrun\\-{roff(name)}\\fR(1)" for name in paged),
    ]
    return "\n".join(lines) + "\n"


_PAGED = ("longrun-exec.1", "longrun-group.1", "longrun-ctl.1")


def pages() -> dict[str, str]:
    from longrun_cli.cli.manpage_ctl import ctl_page

    return {
        "longrun.1": main_page(),
        "longrun-exec.1": exec_page(),
        "longrun-group.1": group_page(),
        "longrun-ctl.1": ctl_page(),
    }


COMPLETION_FILES = {"bash": "longrun.bash", "zsh": "_longrun", "fish": "longrun.fish"}


def completions() -> dict[str, str]:
    from longrun_cli.cli.completion import completion_script

    return {name: completion_script(shell) for shell, name in COMPLETION_FILES.items()}


def write(root: Path) -> None:
    for directory, files in (("man", pages()), ("completions", completions())):
        (root / directory).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / directory / name).write_text(text)


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
