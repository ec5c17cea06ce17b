"""``longrun ctl``: look into and steer a running group through its control socket.

Imported only when ``ctl`` is the command (see ``LazyGroup`` in main), and it
imports neither asyncio nor the engine: a status query stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from longrun_cli.policy.status import EXIT_USAGE

EXIT_REFUSED = 1
EXIT_NO_GROUP = 69  # EX_UNAVAILABLE: nothing serves at that socket

CTL_EPILOG = """\b
Examples:
  longrun ctl status
  longrun ctl status --watch
  longrun ctl --name shop restart web
  longrun ctl logs -n 20 worker
  longrun ctl logs -f
  longrun ctl shutdown

\b
The group is found by name: --name, else the current directory's name (as
`longrun group` names itself), at $XDG_RUNTIME_DIR/longrun/NAME.sock or
/tmp/longrun-UID/NAME.sock; --control PATH names the socket itself.
TASK is a task name, or NAME.K for one replica (NAME alone: all of them).

\b
Exit status: 0 done; 1 refused (unknown task, wrong state: one line says
which); 69 no running group at that socket; 125 usage.
"""


def _socket_path(ctx: click.Context) -> str:
    from longrun_cli.control.paths import default_path

    root = _ctl_params(ctx)
    control = root.get("control")
    if control:
        return str(control)
    name = root.get("name") or os.path.basename(os.getcwd()) or "longrun"
    return default_path(str(name))


def _ctl_params(ctx: click.Context) -> dict[str, Any]:
    node: click.Context | None = ctx
    while node is not None and node.command.name != "ctl":
        node = node.parent
    return node.params if node is not None else {}


def complete_tasks(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Task names from the running group; nothing, at once, when none runs."""
    from longrun_cli.control.client import ControlClient

    try:
        with ControlClient(_socket_path(ctx), timeout=0.5) as client:
            response = client.call("status")
    except Exception:
        return []
    names = [str(task.get("name", "")) for task in response.get("tasks", [])]
    return [name for name in names if name.startswith(incomplete)]


def _client(ctx: click.Context) -> Any:
    from longrun_cli.control.client import ControlClient

    return ControlClient(_socket_path(ctx))


def _answer(response: dict[str, Any]) -> dict[str, Any]:
    """A response, or the exit status for a refusal (one line on stderr)."""
    if response.get("ok"):
        return response
    from longrun_cli.policy.errors import printable

    click.echo(f"longrun ctl: {printable(str(response.get('error')))}", err=True)
    code = response.get("code")
    raise _Refusal(EXIT_REFUSED if code in ("refused", "forbidden", "busy") else EXIT_USAGE)


class _Refusal(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _run(ctx: click.Context, body: Any) -> int:
    from longrun_cli.control.client import NoGroup

    try:
        return int(body())
    except _Refusal as refusal:
        return refusal.status
    except NoGroup as exc:
        click.echo(f"longrun ctl: {exc}", err=True)
        return EXIT_NO_GROUP


@click.group("ctl", epilog=CTL_EPILOG)
@click.option("--name", metavar="NAME", help="The group's name (default: this directory's).")
@click.option("--control", metavar="PATH", help="The group's control socket.")
@click.pass_context
def ctl(ctx: click.Context, name: str | None, control: str | None) -> None:
    """Look into and steer a running group: status, restart, stop, start, logs."""
    if name and control:
        raise click.UsageError("give --name or --control, not both")
    if name is not None:
        from longrun_cli.control.paths import ControlError, check_name

        try:
            check_name(name)
        except ControlError as exc:
            raise click.BadParameter(str(exc), param_hint="'--name'") from None


@ctl.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (with --watch: per change).")
@click.option("--watch", is_flag=True, help="Keep showing the status until the group ends.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool, watch: bool) -> int:
    """One row per task: state, pid, run, attempt, last exit, times, readiness."""
    from longrun_cli.cli import status_view

    def body() -> int:
        with _client(ctx) as client:
            client.send("status", watch=watch)
            responses = client.responses()
            first = next(responses, None)
            if first is None:
                from longrun_cli.control.client import NoGroup

                raise NoGroup(f"the group at {client.path} ended before it answered")
            _answer(first)
            if watch:
                status_view.watch(first, responses, json_lines=as_json)
            elif as_json:
                click.echo(status_view.as_json(first))
            else:
                click.echo(
                    status_view.table(first, colour=status_view.colour(sys.stdout)), nl=False
                )
        return 0

    return _run(ctx, body)


def _operation(verb: str, done: str, summary: str) -> click.Command:
    @click.argument(
        "tasks", nargs=-1, required=True, metavar="TASK...", shell_complete=complete_tasks
    )
    @click.pass_context
    def command(ctx: click.Context, tasks: tuple[str, ...]) -> int:
        def body() -> int:
            with _client(ctx) as client:
                response = _answer(client.call(verb, tasks=list(tasks)))
            for name in response.get("tasks", []):
                click.echo(f"{done} {name}")
            return 0

        return _run(ctx, body)

    command.__doc__ = summary
    return ctl.command(verb)(command)


_operation(
    "restart",
    "restarted",
    "Stop each TASK's attempt gracefully and run it again at once (no failure, budgets reset).",
)
_operation("stop", "stopped", "Stop each TASK gracefully; the others go on (never a failure).")
_operation("start", "started", "Run each TASK stopped by `longrun ctl stop` again.")


@ctl.command("logs")
@click.argument("tasks", nargs=-1, metavar="[TASK...]", shell_complete=complete_tasks)
@click.option(
    "-n", "--lines", type=click.IntRange(0, 100_000), default=100, show_default=True,
    help="Lines of each task's output to show.",
)  # fmt: skip
@click.option("-f", "--follow", is_flag=True, help="Keep showing new lines until the group ends.")
@click.pass_context
def logs_command(ctx: click.Context, tasks: tuple[str, ...], lines: int, follow: bool) -> int:
    """The last lines of each task's output (all tasks when none is named), prefixed."""
    from longrun_cli.cli import status_view

    def body() -> int:
        with _client(ctx) as client:
            client.send("logs", tasks=list(tasks), lines=lines, follow=follow)
            responses = client.responses()
            first = next(responses, None)
            if first is None:
                from longrun_cli.control.client import NoGroup

                raise NoGroup(f"the group at {client.path} ended before it answered")
            _answer(first)
            status_view.print_logs(first, responses)
        return 0

    return _run(ctx, body)


@ctl.command("shutdown")
@click.pass_context
def shutdown_command(ctx: click.Context) -> int:
    """Stop the whole group as SIGTERM does (hooks run); returns once it has ended.

    A second shutdown, like a second SIGTERM, kills the commands at once.
    """

    def body() -> int:
        with _client(ctx) as client:
            _answer(client.call("shutdown"))
            for _ in client.responses():  # the group closes the connection when done
                pass
        return 0

    return _run(ctx, body)
