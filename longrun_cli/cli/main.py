"""``longrun`` and ``longrun exec``: click parses, the engine runs, the exit status maps back."""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from longrun_cli import __version__
from longrun_cli.cli.completers import complete_command, complete_files, complete_signals
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.status import EXIT_USAGE

if TYPE_CHECKING:
    from longrun_cli.cli.render import LogRenderer
    from longrun_cli.policy.taskspec import TaskSpec

EXEC_EPILOG = """\b
Examples:
  longrun exec --interval 30s --retry-exit-code 75:5:2s,60s,3 -- ./check.sh
  longrun exec --timeout 5m --retry-timeout 2 -- ./migrate --up
  longrun exec --retry-stderr '(?i)connection refused:inf:100ms,2s' -- ./worker
  longrun exec --deadline 10m --retry-exit-code 6,7,22,28:inf -- curl -fsS https://example.org
  longrun exec --dry-run --retry-exit-code 64-78:5 -- ./job

\b
Value syntax:
  DURATION  250ms, 2s, 1m30s, 1.5h; a bare number is seconds
  CODES     75 | 75,111 | 64-78 (one rule per code, each with its own budget)
  RETRIES   integer >= 1 or inf (default 3)
  BACKOFF   INITIAL[,MAX[,MULTIPLIER]] (default 1s,30s,2; MAX 0 = no cap)
  REGEX     RE2 syntax, searched in each stderr line; write a colon as \\:

\b
Exit status: 0 success; the command's status on a permanent failure or when
retries are exhausted; 128+N when killed by signal N; 124 timeout or deadline;
125 bad usage; 126 not executable; 127 not found. On TERM/INT/HUP/QUIT the
command is stopped gracefully and longrun dies by the same signal.
"""


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def output_options(function: F) -> F:
    """Options every running command shares: log format, verbosity, dry run."""
    for decorator in reversed(
        [
            click.option(
                "--log-format",
                type=click.Choice(["auto", "text", "json"]),
                default="auto",
                show_default=True,
                help="auto: colour on a terminal, key=value text otherwise.",
            ),
            click.option("-v", "--verbose", count=True, help="More logging: debug events too."),
            click.option(
                "-q", "--quiet", count=True, help="Less logging: -q errors only, -qq nothing."
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Validate, print the plan (JSON with --log-format json), exit 0.",
            ),
        ]
    ):
        function = decorator(function)
    return function


class _LazyGroup(click.Group):
    """Commands in ``LAZY`` are built only when asked for: exec's start-up never pays for them."""

    LAZY: ClassVar[dict[str, str]] = {
        "ctl": "longrun_cli.cli.ctl:ctl",
        "group": "longrun_cli.cli.group:group_command",
        "completion": "longrun_cli.cli.completion:completion_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, attribute = self.LAZY[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute))
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="longrun")
def cli() -> None:
    """Run commands as supervised tasks: retry rules, backoff, timeouts, graceful stop."""


@cli.command(
    "exec",
    epilog=EXEC_EPILOG,
    context_settings={"allow_interspersed_args": False},
)
@click.option(
    "--name",
    metavar="NAME",
    help="Task name in logs (default: basename of COMMAND).",
)
@click.option("--interval", metavar="DURATION", help="Run now, then every DURATION (fixed rate).")
@click.option(
    "--schedule",
    metavar="CRON",
    help="Run at each fire time of a five-field cron expression or @daily, @hourly, ...",
)
@click.option("--timezone", metavar="ZONE", help="Time zone of --schedule (default: local time).")
@click.option("--delay", metavar="DURATION", help="Wait before the first run (not before retries).")
@click.option("--timeout", metavar="DURATION", help="Per-attempt timeout; a timeout is a failure.")
@click.option(
    "--deadline",
    metavar="DURATION",
    help="Total budget for the task, retries and backoffs included; then exit 124.",
)
@click.option(
    "--stop-signal",
    metavar="SIG",
    shell_complete=complete_signals,
    default="TERM",
    show_default=True,
    help="Signal sent on timeout, deadline and stop.",
)
@click.option(
    "--kill-after",
    metavar="DURATION",
    default="10s",
    show_default=True,
    help="Grace period before SIGKILL.",
)
@click.option(
    "--retry-exit-code",
    metavar="CODES[:RETRIES[:BACKOFF]]",
    multiple=True,
    help="Retry these exit codes (repeatable).",
)
@click.option(
    "--retry-stderr",
    metavar="REGEX[:RETRIES[:BACKOFF]]",
    multiple=True,
    help="Retry when a stderr line matches REGEX (repeatable).",
)
@click.option(
    "--retry-signal",
    metavar="SIGNALS[:RETRIES[:BACKOFF]]",
    multiple=True,
    help="Retry when killed by one of SIGNALS from elsewhere, e.g. KILL (repeatable).",
)
@click.option(
    "--retry-timeout",
    metavar="[RETRIES][:BACKOFF]",
    is_flag=False,
    flag_value="",
    default=None,
    help="Retry attempts that hit --timeout.",
)
@click.option(
    "--retry-unhealthy",
    metavar="[RETRIES][:BACKOFF]",
    is_flag=False,
    flag_value="",
    default=None,
    help="Retry attempts stopped by a failing --health probe.",
)
@click.option(
    "--jitter",
    metavar="RATIO",
    default="0",
    help="Draw each delay from [d*(1-RATIO), d]; 0..1 (default 0: exact).",
)
@click.option(
    "--success-exit-code",
    metavar="CODES",
    multiple=True,
    help="Extra exit codes that count as success.",
)
@click.option("--shutdown", metavar="COMMAND", help="Hook run by sh -c after the task stopped.")
@click.option(
    "--ready",
    metavar="PROBE",
    help="systemd READY=1 once PROBE passes: http:URL tcp:HOST:PORT stdout: stderr: output:REGEX"
    " cmd:COMMAND.",
)
@click.option(
    "--health",
    metavar="PROBE",
    help="Liveness PROBE while the command runs; WATCHDOG=1 only while it passes.",
)
@click.option(
    "--health-interval", metavar="DURATION", help="Time between health checks (default 10s)."
)
@click.option("--health-timeout", metavar="DURATION", help="Bound of each check (default 5s).")
@click.option(
    "--health-failures",
    metavar="N",
    help="Failed checks in a row that stop the attempt as unhealthy (default 3).",
)
@click.option(
    "--lock",
    metavar="URL",
    help="Run only while holding this lock: file:PATH (flock) or etcd://HOST:PORT/KEY.",
)
@click.option("--lock-wait", metavar="DURATION", help="One-shot: wait this long, then exit 75.")
@click.option("--lock-ttl", metavar="DURATION", help="etcd lease time to live (default 10s).")
@click.option(
    "--state-file",
    metavar="PATH",
    help="Keep retry budgets and backoff here across restarts of longrun.",
)
@click.option(
    "--circuit-breaker",
    metavar="COOLDOWN[,MAX]",
    help="Interval/schedule tasks: where the task would end, pause COOLDOWN, try once.",
)
@click.option(
    "--ping",
    metavar="URL",
    help="healthchecks.io check: URL/start, URL on success, URL/fail with the stderr tail.",
)
@click.option(
    "--on-failure",
    metavar="COMMAND",
    help="Run by sh -c once if the task fails (not on a stop); $LONGRUN_STDERR_TAIL_FILE.",
)
@click.option(
    "--shutdown-timeout",
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="Bound for the shutdown hook.",
)
@click.option(
    "--env-file",
    metavar="FILE",
    multiple=True,
    shell_complete=complete_files,
    help="Read variables for the command from FILE (dotenv syntax; repeatable, later wins).",
)
@click.option(
    "--foreground",
    is_flag=True,
    help="Keep the command in longrun's process group (terminal access); no group signals.",
)
@output_options
@click.argument(
    "command",
    nargs=-1,
    required=True,
    type=click.UNPROCESSED,
    metavar="-- COMMAND [ARG...]",
    shell_complete=complete_command,
)
def exec_command(
    command: tuple[str, ...],
    log_format: str,
    verbose: int,
    quiet: int,
    dry_run: bool,
    **raw: Any,
) -> int:
    """Run COMMAND as a supervised task (no shell: argv is executed directly)."""
    from longrun_cli.cli.options import ExecOptions, build_task_spec

    def describe(spec: TaskSpec, as_json: bool) -> str:
        from longrun_cli.cli.plan import describe_plan, exec_plan_record, to_json

        return to_json(exec_plan_record(spec)) if as_json else describe_plan(spec)

    def run(spec: TaskSpec, renderer: LogRenderer) -> int:
        from longrun_cli.cli.run import run_exec

        return run_exec(spec, renderer)

    def build() -> TaskSpec:
        return build_task_spec(ExecOptions(command=command, **raw))

    return plan_or_run(build, describe, run, log_format, verbose, quiet, dry_run)


def plan_or_run(
    build: Callable[[], T],
    describe: Callable[[T, bool], str],
    run: Callable[[T, LogRenderer], int],
    log_format: str,
    verbose: int,
    quiet: int,
    dry_run: bool,
) -> int:
    """Build the validated value, then print its plan (--dry-run) or run it."""
    from longrun_cli.cli.render import LogRenderer, threshold

    renderer = LogRenderer(log_format, threshold(verbose, quiet))
    try:
        value = build()
    except SpecError as exc:
        renderer.error(str(exc))
        return EXIT_USAGE
    _warn_about_rules(value, renderer)
    if dry_run:
        click.echo(describe(value, log_format == "json"), nl=False)
        return 0
    return run(value, renderer)


def _warn_about_rules(value: object, renderer: LogRenderer) -> None:
    """A rule that can never fire is almost always a mistake: say so, but run."""
    from longrun_cli.engine.events import Event, Level
    from longrun_cli.policy.taskspec import TaskSpec

    tasks = getattr(value, "tasks", None)
    specs = [task.spec for task in tasks] if tasks is not None else [value]
    for spec in specs:
        if not isinstance(spec, TaskSpec):
            continue
        for doubt in spec.policy.doubts():
            renderer.emit(Event("rule-warning", spec.name, Level.WARNING, doubt))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors exit 125 with one line on stderr, never a traceback."""
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        from longrun_cli.cli.failures import reopen_closed_streams

        reopen_closed_streams()
    try:
        status = cli.main(args=argv, prog_name="longrun", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        from longrun_cli.cli.failures import usage_error, usage_hint

        # click's messages span lines ("Choose from:\n\tbash,..."): one line here.
        usage_error(" ".join(exc.format_message().split()) + usage_hint(exc), argv)
    except OSError as exc:
        # longrun itself cannot work (descriptors or processes exhausted before the
        # engine could report it per task): one line and 125, as timeout(1) does.
        reason = exc.strerror or str(exc)
        hint = " (raise ulimit -n)" if exc.errno == errno.EMFILE else ""
        from longrun_cli.cli.failures import usage_error

        with contextlib.suppress(OSError):
            usage_error(f"{reason}{hint}", argv)
        sys.exit(EXIT_USAGE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # Ctrl-C before the engine took over signals (or after it let go): die by
        # SIGINT like any well-behaved tool, without a traceback.
        import signal

        from longrun_cli.engine.process import reraise

        reraise(signal.SIGINT)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
