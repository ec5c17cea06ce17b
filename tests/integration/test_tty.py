"""Human output on a terminal: colours only on a TTY, NO_COLOR/FORCE_COLOR, Ctrl-C twice."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time

import pytest

from tests.integration.conftest import LONGRUN, longrun

pytestmark = pytest.mark.slow

ESC = b"\x1b["


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(
    args: list[str],
    env: dict[str, str] | None = None,
    keys: list[tuple[float, bytes]] = (),
    after: bytes = b"",
) -> tuple[bytes, int]:
    """Run longrun on a pseudo-terminal; type ``keys`` at times counted from ``after`` showing up."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*LONGRUN, *args], stdin=terminal, stdout=terminal, stderr=terminal,
        env=env or os.environ.copy(), start_new_session=True,
        # The terminal must be longrun's controlling terminal for ^C to become SIGINT.
        preexec_fn=_take_terminal,  # noqa: PLW1509 - a test harness, not longrun
    )  # fmt: skip
    os.close(terminal)
    output = b""
    began = time.monotonic()
    pending = list(keys)
    clock: float | None = None
    while True:
        if pending and after in output:
            if clock is None:
                clock = time.monotonic()
            if time.monotonic() - clock >= pending[0][0]:
                os.write(controller, pending.pop(0)[1])
        ready, _, _ = select.select([controller], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None and not pending:
            break
        if time.monotonic() - began > 30:
            proc.kill()
            break
    proc.wait(timeout=10)
    os.close(controller)
    return output, proc.returncode


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(extra)
    return env


def test_logs_are_coloured_on_a_terminal():
    """On a TTY, longrun's log lines carry colour escapes."""
    output, status = run_in_pty(["exec", "--", "false"], plain_env())
    assert status == 1
    assert ESC in output
    assert b"permanent failure" in output


def test_no_color_turns_colour_off_on_a_terminal():
    """NO_COLOR=1 on a TTY: no escapes at all, and still the human format (not key=value)."""
    output, _ = run_in_pty(["exec", "--", "false"], plain_env(NO_COLOR="1"))
    assert b"permanent failure" in output
    assert ESC not in output
    assert b"level=" not in output


def test_no_colour_through_a_pipe_unless_forced():
    """Through a pipe: key=value text; FORCE_COLOR=1 brings colour back."""
    piped = longrun("exec", "--", "false", env=plain_env())
    assert ESC not in piped.stderr
    assert b"level=error" in piped.stderr
    forced = longrun("exec", "--", "false", env=plain_env(FORCE_COLOR="1"))
    assert ESC in forced.stderr


def test_group_prefixes_are_coloured_only_on_a_terminal():
    """Task prefixes get a colour on a TTY and stay plain in a pipe."""
    output, _ = run_in_pty(["group", "-t", "a=echo hi"], plain_env())
    assert ESC + b"36ma |" in output
    piped = longrun("group", "-t", "a=echo hi", env=plain_env())
    assert piped.stdout == b"a | hi\n"


def test_second_ctrl_c_kills_at_once_and_says_so():
    """Ctrl-C stops gracefully; a second Ctrl-C skips the grace period, with a message."""
    output, status = run_in_pty(
        ["exec", "--kill-after", "60s", "--", "sh", "-c", "trap '' TERM; echo ready; sleep 60"],
        plain_env(NO_COLOR="1"),
        keys=[(0.2, b"\x03"), (0.8, b"\x03")],
        after=b"ready",
    )
    assert status == -signal.SIGINT
    assert b"stopping gracefully" in output
    assert b"killing the commands now" in output


def test_ctrl_c_under_foreground_is_a_stop_not_a_failure():
    """Ctrl-C reaches the command and longrun at once: "stopped on request", exit by INT."""
    output, status = run_in_pty(
        ["exec", "-v", "--foreground", "--", "sleep", "30"],
        plain_env(NO_COLOR="1"),
        keys=[(0.3, b"\x03")],
        after=b"attempt started",
    )
    assert b"stopped on request" in output, output
    assert b"permanent failure" not in output
    assert status in (-signal.SIGINT, 128 + signal.SIGINT)


def test_a_carriage_return_in_group_output_keeps_the_prefix_on_a_terminal():
    """printf '1\\r2\\n' on a terminal: the prefix is written again after the \\r."""
    output, status = run_in_pty(["group", "-t", "a=printf '1\\r2\\n'"], plain_env(NO_COLOR="1"))
    assert status == 0
    assert b"a | 1\ra | 2" in output.replace(b"\r\n", b"\n"), output
