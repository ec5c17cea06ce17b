"""``longrun group``: the click command, and its option values → a GroupSpec from one source.

Loaded only when ``group`` is the command: exec's start-up never builds it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import click

from longrun_cli.cli.completers import complete_files
from longrun_cli.cli.config import from_toml
from longrun_cli.cli.conventions import Conventions, apply, conventions_from
from longrun_cli.cli.main import output_options, plan_or_run
from longrun_cli.cli.options import ExecOptions
from longrun_cli.cli.procfile import from_inline, from_procfile
from longrun_cli.cli.textfile import ConfigError
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import DEFAULT_SHUTDOWN_TIMEOUT, GroupSpec
from longrun_cli.policy.status import EXIT_USAGE

if TYPE_CHECKING:
    from longrun_cli.cli.render import LogRenderer

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
    conventions: Conventions | None = None,
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
        group = from_inline(inline, bound or DEFAULT_SHUTDOWN_TIMEOUT, grace)
    elif procfile:
        group = from_procfile(procfile, bound or DEFAULT_SHUTDOWN_TIMEOUT, grace)
    else:
        group = from_toml(file or DEFAULT_FILE, bound, grace)
    return apply(group, conventions or Conventions(), plain=bool(inline or procfile))


def every_task_takes(group: GroupSpec, options: ExecOptions) -> GroupSpec:
    """The exec options a -t/--procfile group was given, applied to each of its tasks."""
    from dataclasses import replace

    from longrun_cli.cli.options import build_task_spec

    shared = build_task_spec(options)
    tasks = tuple(
        replace(
            task,
            spec=task.spec._replace(
                timeout=shared.timeout, stop_signal=shared.stop_signal, policy=shared.policy
            ),
        )
        for task in group.tasks
    )
    return replace(group, tasks=tasks)


def _duration(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except SpecError as exc:
        raise ConfigError(f"{option}: {exc}") from None


GROUP_EPILOG = """\b
Sources (one per call):
  longrun group [FILE]            a TOML file (default ./longrun.toml)
  longrun group -t NAME=CMD ...   commands run by sh -c
  longrun group --procfile FILE   'name: command' lines, as honcho reads them

\b
Examples:
  longrun group
  longrun group -t web='python -m http.server' -t worker='./worker.sh'
  longrun group --procfile Procfile --shutdown-timeout 10s
  longrun group --dry-run services.toml

\b
All tasks start together (or when their depends_on conditions hold). A task
that succeeds does not stop the others; the first that fails permanently stops
them all, then shutdown hooks run in reverse dependency order. Exit status: the
first failing task's, 0 when none failed; TERM/INT/HUP/QUIT stop everything
gracefully and are re-raised.
"""


@click.command("group", epilog=GROUP_EPILOG)
@click.argument("file", required=False, metavar="[FILE]", shell_complete=complete_files)
@click.option(
    "-t", "--task", "inline", multiple=True, metavar="NAME=COMMAND",
    help="A task run by sh -c (repeatable).",
)  # fmt: skip
@click.option(
    "--procfile", metavar="FILE", shell_complete=complete_files, help="Read tasks from a Procfile."
)
@click.option(
    "--shutdown-timeout",
    metavar="DURATION",
    help="Bound for all shutdown hooks together (default: [runner] value, else 30s).",
)
@click.option(
    "--kill-after",
    metavar="DURATION",
    help="Grace period before SIGKILL for every task (default: [runner] value, else 10s).",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    metavar="FILE",
    shell_complete=complete_files,
    help="Read variables for every task (repeatable; replaces ./.env for -t and --procfile).",
)
@click.option(
    "--port",
    metavar="N",
    help="Base PORT for -t and --procfile tasks, +100 per task, +1 per replica (default 5000).",
)
@click.option(
    "-c",
    "--concurrency",
    multiple=True,
    metavar="NAME=N[,NAME=N...]",
    help="Run N replicas of a task: NAME.1 ... NAME.N (repeatable).",
)
@click.option(
    "--timeout", metavar="DURATION", help="Per-attempt timeout of every -t/--procfile task."
)
@click.option(
    "--stop-signal", metavar="SIG", help="Stop signal of every -t/--procfile task (default TERM)."
)
@click.option(
    "--retry-exit-code",
    multiple=True,
    metavar="CODES[:RETRIES[:BACKOFF]]",
    help="A retry rule for every -t/--procfile task, as exec takes it (repeatable).",
)
@click.option(
    "--retry-stderr",
    multiple=True,
    metavar="REGEX[:RETRIES[:BACKOFF]]",
    help="A retry rule for every -t/--procfile task, as exec takes it (repeatable).",
)
@click.option(
    "--retry-signal",
    multiple=True,
    metavar="SIGNALS[:RETRIES[:BACKOFF]]",
    help="A retry rule for every -t/--procfile task, as exec takes it (repeatable).",
)
@click.option(
    "--retry-timeout",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[RETRIES][:BACKOFF]",
    help="Retry every -t/--procfile task's timed-out attempts.",
)
@click.option("--no-prefix", is_flag=True, help="Do not prefix output lines with task names.")
@click.option(
    "--timestamps",
    is_flag=True,
    help="Begin each output line with the local time it arrived (ISO 8601, milliseconds).",
)
@click.option(
    "--name",
    metavar="NAME",
    help="Group name for longrun ctl (default: [runner] name, else the directory's name).",
)
@click.option(
    "--control",
    metavar="PATH",
    help="Serve the control socket here (default: $XDG_RUNTIME_DIR/longrun/NAME.sock).",
)
@click.option("--no-control", is_flag=True, help="Serve no control socket (no longrun ctl).")
@click.option(
    "--lock",
    metavar="URL",
    help="Run the group only while holding this lock (file:PATH or etcd://HOST:PORT/KEY).",
)
@click.option("--lock-wait", metavar="DURATION", help="Wait this long for the lock, then exit 75.")
@click.option("--lock-ttl", metavar="DURATION", help="etcd lease time to live (default 10s).")
@output_options
def group_command(
    file: str | None,
    inline: tuple[str, ...],
    procfile: str | None,
    shutdown_timeout: str | None,
    kill_after: str | None,
    env_files: tuple[str, ...],
    port: str | None,
    concurrency: tuple[str, ...],
    timeout: str | None,
    stop_signal: str | None,
    retry_exit_code: tuple[str, ...],
    retry_stderr: tuple[str, ...],
    retry_signal: tuple[str, ...],
    retry_timeout: str | None,
    no_prefix: bool,
    timestamps: bool,
    name: str | None,
    control: str | None,
    no_control: bool,
    lock: str | None,
    lock_wait: str | None,
    lock_ttl: str | None,
    log_format: str,
    verbose: int,
    quiet: int,
    dry_run: bool,
) -> int:
    """Run several commands together under one runner."""

    def describe(group: GroupSpec, as_json: bool) -> str:
        from longrun_cli.cli.plan import describe_group, group_plan_record, to_json

        return to_json(group_plan_record(group)) if as_json else describe_group(group)

    def run(group: GroupSpec, renderer: LogRenderer) -> int:
        from longrun_cli.cli.run import run_group

        try:
            settings = None if no_control else control_settings(group, file, name, control)
        except SpecError as exc:
            renderer.error(str(exc))
            return EXIT_USAGE
        return run_group(
            group, renderer, prefix=not no_prefix, control=settings, timestamps=timestamps
        )

    def build() -> GroupSpec:
        conventions = conventions_from(env_files, port, concurrency)
        group = load_group(file, inline, procfile, shutdown_timeout, kill_after, conventions)
        shared = {
            "--timeout": timeout,
            "--stop-signal": stop_signal,
            "--retry-exit-code": retry_exit_code,
            "--retry-stderr": retry_stderr,
            "--retry-signal": retry_signal,
            "--retry-timeout": retry_timeout,
        }
        if lock is not None or lock_wait is not None or lock_ttl is not None:
            from dataclasses import replace

            from longrun_cli.cli.options import lock_spec

            group = replace(group, lock=lock_spec(lock, lock_wait, lock_ttl))
        given = [option for option, value in shared.items() if value not in (None, ())]
        if not given:
            return group
        if not (inline or procfile):
            raise ConfigError(
                f"{given[0]} applies to -t and --procfile tasks; in a TOML file, set it per task"
            )
        return every_task_takes(
            group,
            ExecOptions(
                command=("-",),
                timeout=timeout,
                stop_signal=stop_signal or "TERM",
                retry_exit_code=retry_exit_code,
                retry_stderr=retry_stderr,
                retry_signal=retry_signal,
                retry_timeout=retry_timeout,
            ),
        )

    return plan_or_run(build, describe, run, log_format, verbose, quiet, dry_run)
