"""What an attempt is started with (LaunchSpec), how it ended (ExitStatus), and why it
could not start (SpawnError, with the message a shell would give).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from longrun_cli.engine.logring import LogRing
    from longrun_cli.engine.tail import StderrTail


class SpawnError(Exception):
    """The command could not be started; ``status`` is 126 or 127 as a shell would give."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LaunchSpec:
    """How to start one attempt; ``own_group=False`` is ``--foreground``."""

    # A plain class, not a NamedTuple: a NamedTuple's __new__ is compiled at run time,
    # on every start (~0.1 M instructions a field); this one comes compiled from the .pyc.
    __slots__ = (
        "argv",
        "cwd",
        "env",
        "kill_after",
        "log",
        "on_stderr_match",
        "on_stdout_match",
        "output_prefix",
        "output_stamp",
        "own_group",
        "pass_fds",
        "quiet",
        "repeated_patterns",
        "stderr_patterns",
        "stderr_tail",
        "stdin_null",
        "stdout_patterns",
        "stop_signal",
    )

    def __init__(
        self,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None = None,
        own_group: bool = True,
        stderr_patterns: tuple[str, ...] = (),
        stop_signal: int = signal.SIGTERM,
        kill_after: float = 10.0,
        output_prefix: bytes | None = None,
        stdout_patterns: tuple[str, ...] = (),
        on_stdout_match: Callable[[str], None] | None = None,
        on_stderr_match: Callable[[str], None] | None = None,
        stdin_null: bool = False,
        quiet: bool = False,
        log: LogRing | None = None,
        output_stamp: Callable[[], bytes] | None = None,
        stderr_tail: StderrTail | None = None,
        repeated_patterns: frozenset[str] = frozenset(),
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.own_group = own_group
        self.stderr_patterns = stderr_patterns
        self.stop_signal = stop_signal
        self.kill_after = kill_after
        # Group mode: both streams copied line by line behind this prefix (b"" = none).
        self.output_prefix = output_prefix
        # Readiness: ``on_stdout_match`` is called when one of these appears on stdout.
        self.stdout_patterns = stdout_patterns
        self.on_stdout_match = on_stdout_match
        # any stderr pattern, first seen
        self.on_stderr_match = on_stderr_match
        self.stdin_null = stdin_null
        # readiness probes: output discarded
        self.quiet = quiet
        # group mode: the task's last lines, for longrun ctl logs
        self.log = log
        # group --timestamps: before each line
        self.output_stamp = output_stamp
        # --on-failure: the attempt's last stderr lines (stderr is piped for it)
        self.stderr_tail = stderr_tail
        # --health with a regex (a heartbeat): reported every time, not only the first
        self.repeated_patterns = repeated_patterns
        # --lock file: the locked descriptor, so the lock lives as long as the command does
        self.pass_fds = pass_fds


class ExitStatus(NamedTuple):
    """How a process ended: an exit code or the signal that killed it."""

    code: int | None
    signal: int | None
    stderr_hits: frozenset[str] = frozenset()
    # An escaped process (setsid) still held the output: longrun stopped waiting.
    output_held: bool = False

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.waitstatus_to_exitcode(status), None)


def missing_interpreter(command: str, path: str | None, cwd: str | None) -> str | None:
    """The interpreter a script's #! line names, when the script exists and it does not."""
    import shutil

    found = shutil.which(command, path=path) if "/" not in command else command
    if found is None:
        return None
    try:
        with open(os.path.join(cwd or "", found), "rb") as script:
            first = script.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split()
    return os.fsdecode(words[0]) if words else None


def spawn_failure(command: str, exc: OSError) -> str:
    """Why a command could not start, with what to do about the limits behind it."""
    if exc.errno == errno.EMFILE:
        return f"cannot start {command}: too many open files (raise ulimit -n)"
    if exc.errno == errno.EAGAIN:
        return f"cannot start {command}: process limit reached (ulimit -u)"
    if exc.errno == errno.ENOEXEC:
        return f"cannot execute {command}: not an executable format (missing #! line?)"
    return f"cannot execute {command}: {exc.strerror}"


def spawn_quickly(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    own_group: bool,
    sigmask: frozenset[int],
) -> int:
    """posix_spawn (a vfork underneath): what ``subprocess.Popen`` does for a launch without
    ``cwd``, inherited descriptors or a descriptor limit to give back, at 0.67 ms instead
    of 1.06 ms a spawn (measured here), which every attempt pays.

    As Popen: the command is looked for on the PATH of its own environment, SIGPIPE and
    SIGXFSZ are back to their defaults, descriptors other than 0-2 are not inherited
    (everything longrun opens is close-on-exec). Raises what Popen raises:
    FileNotFoundError (with the name), PermissionError, OSError.
    """
    command = argv[0]
    search = env.get("PATH")
    # The C library searches in the child, with no Python work per directory, but
    # on longrun's own PATH: only when the command's is the same.
    searched_by_libc = "/" not in command and search == os.environ.get("PATH")
    actions: list[tuple[Any, ...]] = []
    for target, source in ((0, stdin), (1, stdout), (2, stderr)):
        if source is not None:
            actions.append((os.POSIX_SPAWN_DUP2, source, target))
    options: dict[str, Any] = {"setsigdef": (signal.SIGPIPE, signal.SIGXFSZ)}
    if own_group:
        options["setpgroup"] = 0
    if sigmask:
        options["setsigmask"] = sigmask
    if searched_by_libc:
        return os.posix_spawnp(command, list(argv), env, file_actions=actions, **options)
    return os.posix_spawn(_find(command, search), list(argv), env, file_actions=actions, **options)


class LowSlots:
    """Descriptors below the descriptor limit longrun was started with, kept on /dev/null.

    A group too large for that limit raises its own, and its commands must start with
    the old one. posix_spawn under the old limit does it (``platform.with_fd_limit``),
    but the C library refuses to dup a descriptor at or above the limit in force: such
    a pipe end is first passed through one of these slots.
    """

    def __init__(self, null: int, slots: list[int]) -> None:
        self._null = null
        self._slots = slots

    @classmethod
    def reserve(cls, *, below: int) -> LowSlots | None:
        """Four descriptors under ``below``, or None (then Popen it is)."""
        fds: list[int] = []
        with contextlib.suppress(OSError):  # none left at all: fewer than four
            while len(fds) < 4 and (not fds or fds[-1] < below):
                fds.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
        if len(fds) < 4 or max(fds) >= below:  # no room below the old limit
            for fd in fds:
                os.close(fd)
            return None
        return cls(fds[0], fds[1:])

    @contextlib.contextmanager
    def under(
        self, limits: tuple[int, int], streams: tuple[int | None, int | None, int | None]
    ) -> Iterator[tuple[int | None, int | None, int | None]]:
        """``streams`` as descriptors below the old limit, with that limit in force: the
        caller spawns inside, and nothing else (it has checked that no other thread
        can open a descriptor meanwhile)."""
        from longrun_cli.engine import platform

        low: dict[int, int] = {}

        def lowered(fd: int | None) -> int | None:
            if fd is None or fd < limits[0]:
                return fd
            if fd not in low:
                low[fd] = os.dup2(fd, self._slots[len(low)], inheritable=False)
            return low[fd]

        try:
            stdin, stdout, stderr = (lowered(fd) for fd in streams)
            with platform.fd_limit(limits):
                yield stdin, stdout, stderr
        finally:
            # Back to /dev/null: the pipe's write end must close in longrun (or the
            # reader never sees its end), and a free slot could be taken by a pipe.
            for slot in low.values():
                os.dup2(self._null, slot, inheritable=False)


def _find(command: str, search: str | None) -> str:
    """The file ``command`` names, found as execvpe finds it (Popen's rules)."""
    if "/" in command:
        return command
    denied = False
    for directory in (search if search is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", command)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = True
    if denied:
        raise PermissionError(13, "Permission denied", command)
    raise FileNotFoundError(2, "No such file or directory", command)


def spawn_generally(
    spec: LaunchSpec,
    env: dict[str, str],
    out_pipe: tuple[int, int] | None,
    err_pipe: tuple[int, int] | None,
    quiet: int | None,
    blocked: frozenset[int],
    limits: tuple[int, int] | None,
) -> int:
    """subprocess.Popen, for what posix_spawn cannot do: a ``cwd``, inherited descriptors
    (the file lock's); the pid, left for the supervisor to reap."""
    import subprocess

    from longrun_cli.engine import platform

    if blocked:
        ours = signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        popen = subprocess.Popen(
            list(spec.argv),
            env=env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL if spec.stdin_null else None,
            stdout=out_pipe[1] if out_pipe else quiet,
            stderr=err_pipe[1] if err_pipe else quiet,
            process_group=0 if spec.own_group else None,
            pass_fds=spec.pass_fds,
            # Only for a group too large for the soft descriptor limit; it calls one C
            # function (the writer threads hold no lock it needs).
            preexec_fn=(  # noqa: PLW1509
                None if limits is None else platform.restore_fd_limit_before_exec(limits)
            ),
        )
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_SETMASK, ours)
    # Popen would otherwise wait for (and might reap) the pid on its own.
    popen.returncode = 0
    return popen.pid


def spawn_error(exc: OSError, command: str, cwd: str | None, search: str | None) -> SpawnError:
    """Why ``command`` could not start, as a shell says it, with its status (126, 127)."""
    if isinstance(exc, FileNotFoundError):
        missing = exc.filename if exc.filename else command
        if cwd is not None and missing == cwd:
            return SpawnError(f"working directory not found: {cwd}", 127)
        interpreter = missing_interpreter(command, search, cwd)
        if interpreter is not None:
            # The file exists; its #! line names what does not (as bash says it).
            return SpawnError(
                f"cannot execute {command}: bad interpreter {interpreter}: not found", 126
            )
        return SpawnError(f"command not found: {command}", 127)
    if isinstance(exc, PermissionError):
        return SpawnError(f"permission denied: {command}", 126)
    return SpawnError(spawn_failure(command, exc), 126)
