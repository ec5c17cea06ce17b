"""longrun-ctl(1): the verbs from the live click commands, and the control protocol."""

from __future__ import annotations

import click

from longrun_cli.cli.ctl import ctl
from longrun_cli.cli.manpage import _header, _options, _tagged, roff
from longrun_cli.control import protocol
from longrun_cli.engine.taskstate import STATES

STATE_MEANINGS = {
    "waiting": "Its depends_on conditions do not hold yet.",
    "starting": "In its initial delay, or running but its readiness condition has not held yet.",
    "running": "An attempt is running (the task has no readiness condition).",
    "ready": "An attempt is running and its readiness condition has held.",
    "backoff": "Waiting to retry; NEXT counts down to the retry.",
    "sleeping": "Between two runs of an interval task; NEXT counts down to the next run.",
    "succeeded": "Ended successfully.",
    "failed": "Ended with a permanent failure (or its deadline passed).",
    "exhausted": "Ended: a retry rule ran out of retries.",
    "stopped": "Stopped by longrun ctl stop (longrun ctl start runs it again), or by the "
    "group's own stop.",
}

FILES = (
    "The socket of group NAME is $XDG_RUNTIME_DIR/longrun/NAME.sock, or "
    "/tmp/longrun-UID/NAME.sock when XDG_RUNTIME_DIR is not set; its directory is "
    "0700, the socket 0600, and a peer of another user is refused (SO_PEERCRED) unless it "
    "is root. longrun ctl takes NAME from --name, else from the name of the current "
    "directory, as longrun group does when it reads ./longrun.toml. The socket is removed "
    "however the group ends; after a SIGKILL a stale file stays, and the next group of that "
    "name replaces it."
)

PROTOCOL = f"""\
The socket speaks newline-delimited JSON: a client writes one request per line and \
reads one response per line (status --watch and logs --follow keep sending lines until \
the group ends, then the group closes the connection). Every message carries \
"version": {protocol.VERSION}. A connection may carry several requests, one after \
another. A request line is at most {protocol.MAX_REQUEST} bytes; a longer one is \
answered with code too-long and the connection is closed. A connection with no request \
for a minute is closed; past 256 connections, the one idle longest is closed (code busy) \
to make room. Requests:"""

REQUESTS = [
    (
        '{"version":1,"verb":"status"}',
        'Response: "group", "pid" and "tasks", a list of rows; with --lock, "lock": holder '
        "(with the token) or standby.",
    ),
    (
        '{"version":1,"verb":"status","watch":true}',
        "The status, then the whole status again after every change (at most ten a second).",
    ),
    (
        '{"version":1,"verb":"restart","tasks":["web"]}',
        'Also "stop" and "start". Answered once done: "tasks" lists the tasks acted on.',
    ),
    (
        '{"version":1,"verb":"logs","tasks":["web"],"lines":100,"follow":false}',
        '"tasks" empty or absent: every task. Response: "tasks" (the names) and "lines", a '
        'list of {"task": NAME, "line": TEXT}; with "follow", further responses carry new '
        'lines, and "dropped": N when N lines were lost because the client read too slowly. '
        'A response holds at most 64 KiB of lines; "more": true says another one follows. '
        "Bytes that are not UTF-8 arrive as \\udcXX escapes (Python's surrogateescape).",
    ),
    (
        '{"version":1,"verb":"shutdown"}',
        "Answered at once; the connection closes when the group has ended.",
    ),
]

ROW_FIELDS = [
    ("name, state", "The task and its state (see STATES)."),
    ("pid", "The running attempt's process, or null."),
    ("run, attempt", "Invocations so far; the try within the current failure streak."),
    ("last_exit", 'The last attempt\'s end: "0", "75", "SIGKILL", "timeout", or null.'),
    ("in_state, next_in", "Seconds in this state; seconds to the next run or retry, or null."),
    ("ready", "true or false for a task with a readiness condition, else null."),
]

ERRORS = [
    ('{"version":1,"ok":false,"code":CODE,"error":MESSAGE}', "Any refused request."),
    (protocol.BAD_REQUEST, "Not a valid request (not JSON, unknown field or verb, wrong type)."),
    (protocol.TOO_LONG, f"A request line over {protocol.MAX_REQUEST} bytes."),
    (protocol.REFUSED, "Well formed but not now: an unknown task, a task in the wrong state."),
    (protocol.FORBIDDEN, "The peer is another user."),
    (protocol.BUSY, "Too many connections: this, the one idle longest, was closed."),
]

EXIT_STATUS = [
    ("0", "Done."),
    ("1", "Refused: an unknown task or a task in the wrong state; one line on stderr says which."),
    ("69", "No group runs at that socket."),
    ("125", "Bad usage."),
]


def _verbs() -> list[str]:
    lines: list[str] = []
    ctx = click.Context(ctl, info_name="ctl")
    for name in ctl.list_commands(ctx):
        command = ctl.get_command(ctx, name)
        assert command is not None
        usage = " ".join(command.collect_usage_pieces(click.Context(command, info_name=name)))
        lines += [".TP", f"\\fB{roff(name)}\\fR {roff(usage)}", roff(command.help or "")]
        options = _options(command)
        if options:
            lines += [".RS", *options, ".RE"]
    return lines


def ctl_page() -> str:
    lines = _header("longrun-ctl", "look into and steer a running longrun group")
    lines += [
        ".SH SYNOPSIS",
        "\\fBlongrun ctl\\fR [\\fB\\-\\-name\\fR \\fINAME\\fR | \\fB\\-\\-control\\fR "
        "\\fIPATH\\fR] \\fIVERB\\fR [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        roff(
            "Talks to a running longrun group through its control socket. A restart or a stop "
            "asked for here is never a failure: no retry rule sees it, no budget is spent "
            "(a restart resets the budgets), and the other tasks go on. TASK is a task name, "
            "or NAME.K for one replica; NAME alone means all its replicas. For logs, each "
            "task keeps its last [runner] log_lines lines (default 1000), each line at most "
            "16 KiB; a group keeps at most 64 MiB of lines in all, shared out among its tasks "
            "(the oldest lines go first)."
        ),
        ".SH OPTIONS",
        *_options(ctl),
        ".SH VERBS",
        *_verbs(),
        ".SH STATES",
        *_tagged([(state, STATE_MEANINGS[state]) for state in STATES]),
        ".SH EXIT STATUS",
        *_tagged(EXIT_STATUS),
        ".SH PROTOCOL",
        roff(PROTOCOL),
        *_tagged(REQUESTS),
        ".PP",
        roff("Each status row has:"),
        *_tagged(ROW_FIELDS),
        ".PP",
        roff("Errors, with their codes:"),
        *_tagged(ERRORS),
        ".PP",
        roff("For example, with socat:"),
        ".PP",
        ".RS 4",
        ".nf",
        roff(
            'echo \'{"version":1,"verb":"status"}\' |\n'
            '  socat - UNIX-CONNECT:"$XDG_RUNTIME_DIR/longrun/shop.sock"'
        ),
        ".fi",
        ".RE",
        ".SH FILES",
        roff(FILES),
        ".SH SEE ALSO",
        "\\fBlongrun\\fR(1), \\fBlongrun\\-group\\fR(1)",
    ]
    return "\n".join(lines) + "\n"
