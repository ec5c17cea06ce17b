"""The one package that starts, signals and reaps processes (a child: ``child.py``).

Every ``os.kill``/``os.killpg`` of longrun lives here. Children are reaped from a
SIGCHLD handler on the event loop (no thread per child, no polling); as PID 1 the
same handler also reaps every orphan the kernel hands to longrun. The CLI's
session installs the signal handlers (``cli.session.SignalRouter``).

Pids are safe to signal without pidfds: a child's pid cannot be reused before
longrun reaps it, and reaping happens in one place (``Supervisor._reap``), which
marks the child exited in the same step. After that, a child's process group is
signalled only until it is found empty, never again (``Child.send``), and a
released child is removed only if its pid still names it. A pidfd per child
would cost a descriptor per task of a large group for no further safety.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from longrun_cli.engine import platform
from longrun_cli.engine.launch import (
    LaunchSpec,
    LowSlots,
    spawn_error,
    spawn_generally,
    spawn_quickly,
)
from longrun_cli.engine.platform import MARK_VARIABLE, Watcher, new_mark
from longrun_cli.engine.process.child import Child

if TYPE_CHECKING:
    from longrun_cli.engine.output import LineCopier
    from longrun_cli.engine.streams import StreamCopier
    from longrun_cli.engine.tail import StderrTail

# posix_spawn for the launches it can do (LONGRUN_SPAWN=popen: always Popen, to compare).
_QUICK = hasattr(os, "posix_spawn") and os.environ.get("LONGRUN_SPAWN") != "popen"


class Supervisor:
    """Owns every child of longrun: spawning, reaping, forwarding and final clean-up.

    Every command, hook and probe carries longrun's mark in ``LONGRUN_MARK``: the
    watcher finds by it whatever survives a SIGKILL of longrun.
    """

    def __init__(self, *, child_sigmask: frozenset[int] = frozenset()) -> None:
        self._children: dict[int, Child] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: Watcher | None = None
        self._release_timer: asyncio.TimerHandle | None = None
        self._watch_flush_due = False
        self._own_mark, self._mark = new_mark(os.environ.get(MARK_VARIABLE))
        self._subreaper = False
        # The mask longrun was started with: the commands get it back.
        self._child_sigmask = child_sigmask
        self._limits: tuple[int, int] | None = None  # what the commands get back
        self._devnull: int | None = None
        self._slots: LowSlots | None = None  # for spawning under the old descriptor limit
        self.on_tty_stop: Callable[[int, int], None] | None = None
        # The second stop signal (set by the session): what a command left in its
        # group is killed then, not after the grace period.
        self.kill_now: asyncio.Future[None] | None = None

    def install(self, route: Callable[[int, Callable[[int], object]], None]) -> None:
        """Start reaping on SIGCHLD (``route`` sets a handler); call inside the event loop."""
        self._loop = asyncio.get_running_loop()
        route(signal.SIGCHLD, self._on_sigchld)
        if os.getpid() == 1:
            self._subreaper = platform.proc_is_ours()
        else:
            self._subreaper = platform.become_subreaper() and platform.proc_is_ours()

    def reserve_descriptors(self, count: int) -> None:
        """Make room for ``count`` more descriptors; the commands keep the limit they had."""
        limits = platform.raise_fd_limit(count)
        if limits is not None:
            self._limits = limits
            if _QUICK and self._slots is None:
                self._slots = LowSlots.reserve(below=limits[0])

    def _on_sigchld(self, _signum: int) -> None:
        self._reap()

    async def stop_orphans(self, signum: int, grace: float) -> int:
        """Stop processes that escaped their group (``setsid``) and were adopted by longrun.

        As a child subreaper (or PID 1) longrun inherits such orphans; at the end of
        the run they get the stop signal, then SIGKILL after ``grace`` seconds. The
        search repeats until none is left: stopping one daemon hands its own
        escaped helpers to longrun in turn. Being our children, their pids cannot
        be reused before we reap them. Returns how many there were.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        stopped: set[int] = set()
        while adopted := self._adopted():
            for pid in adopted:
                if pid not in stopped:
                    _signal_tree(pid, signum)
                    _signal_tree(pid, signal.SIGCONT)
                    stopped.add(pid)
                if loop.time() >= deadline:
                    _signal_tree(pid, signal.SIGKILL)
            if loop.time() >= deadline + _ORPHAN_GIVE_UP:
                break  # stuck in the kernel (state D): the watcher searches after us
            await asyncio.sleep(_ORPHAN_POLL)
        return len(stopped)

    def _adopted(self) -> list[int]:
        known = set(self._children)
        if self._watcher is not None:
            known.add(self._watcher.pid)
        return [pid for pid in platform.children_of_this_process() if pid not in known]

    def close(self) -> None:
        """Kill anything still running, stop reaping and let the watcher go."""
        # Settled: every child ended and, as a subreaper, no orphan is left. Then
        # the watcher need not search by the mark; otherwise (an abnormal end, no
        # subreaper) it does, after the groups killed here.
        settled = self._subreaper and not self._children and not self._adopted()
        for child in list(self._children.values()):
            child.send(signal.SIGKILL)
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if self._watcher is not None:
            # Exited groups must not be signalled when the watcher sees EOF.
            self._watcher.close(settled=settled)

    def spawn(self, spec: LaunchSpec) -> Child:
        """Start one attempt; raises SpawnError for a missing or non-executable command."""
        if self._watcher is None:
            self._watcher = Watcher.start(self._own_mark if platform.proc_is_ours() else "")
        lined = spec.output_prefix is not None
        env = dict(spec.env)
        env[MARK_VARIABLE] = self._mark
        if spec.cwd is not None:
            _name_working_directory(env, spec.cwd)
        quiet = subprocess.DEVNULL if spec.quiet else None
        fds: list[int] = []
        blocked = self._child_sigmask
        try:
            # A stream nobody reads is inherited: no copying at all.
            out_pipe = _pipe(fds) if lined or spec.stdout_patterns else None
            err_pipe = _pipe(fds) if lined or spec.stderr_patterns or spec.stderr_tail else None
            null = self._null() if spec.quiet or spec.stdin_null else None
            stdin = null if spec.stdin_null else None
            stdout = out_pipe[1] if out_pipe else null if spec.quiet else None
            stderr = err_pipe[1] if err_pipe else null if spec.quiet else None
            limits, slots = self._limits, self._slots
            if (
                spec.cwd is None
                and not spec.pass_fds
                and _QUICK
                and (limits is None or (slots is not None and self._alone()))
            ):
                # With a raised limit, the child must start with the one longrun was
                # started with (a prlimit after the spawn comes too late for a `ulimit
                # -n` at once): spawned under it.
                streams = (stdin, stdout, stderr)
                with (
                    contextlib.nullcontext(streams)
                    if limits is None or slots is None
                    else slots.under(limits, streams)
                ) as (stdin, stdout, stderr):
                    pid = spawn_quickly(
                        spec.argv, env, stdin=stdin, stdout=stdout, stderr=stderr,
                        own_group=spec.own_group, sigmask=blocked,
                    )  # fmt: skip
            else:  # Popen sets the limit before exec (a fork: 3 ms a spawn, not 0.5)
                pid = spawn_generally(spec, env, out_pipe, err_pipe, quiet, blocked, limits)
        except OSError as exc:
            _close(*fds)
            raise spawn_error(exc, spec.argv[0], spec.cwd, env.get("PATH")) from None
        child = Child(self, pid, spec)
        self._children[child.pid] = child
        watcher = self._watcher
        if watcher is not None and watcher.watch(child.target) and not self._watch_flush_due:
            if self._loop is None:
                watcher.flush()
            else:
                self._watch_flush_due = True
                self._loop.call_soon(self._flush_watches)
        if out_pipe is not None:
            child._stdout_copier = _copier(
                out_pipe, 1, spec.stdout_patterns, spec.on_stdout_match, spec
            )
        if err_pipe is not None:
            child._stderr_copier = _copier(
                err_pipe, 2, spec.stderr_patterns, spec.on_stderr_match, spec, spec.stderr_tail
            )
        # No reaping here: a child that already ended is reaped by the SIGCHLD handler
        # on the loop's next turn (a waitpid(-1) scans every child: 2,000 spawns would
        # scan two million).
        return child

    def _alone(self) -> bool:
        """No thread but the loop's and the output writers (which never open one)."""
        from longrun_cli.engine.destination import writer_threads

        return platform.thread_count() == 1 + writer_threads()

    def _null(self) -> int:
        """/dev/null, opened once (close-on-exec: a child gets it only as 0, 1 or 2)."""
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self._devnull

    def release(self, child: Child) -> None:
        # The pid may already name a newer child (reused after this one was reaped).
        if self._children.get(child.pid) is child:
            del self._children[child.pid]
        if self._watcher is None:
            return
        # An exited group stays listed for at most _RELEASE_DELAY: were longrun
        # killed then, the watcher would signal a group id that is almost surely
        # still unused (ids are reused only after the pid space wraps).
        self._watcher.release_later(child.target)
        if self._release_timer is None and self._loop is not None:
            self._release_timer = self._loop.call_later(_RELEASE_DELAY, self._flush_releases)

    def _flush_watches(self) -> None:
        self._watch_flush_due = False
        if self._watcher is not None:
            self._watcher.flush()

    def _flush_releases(self) -> None:
        self._release_timer = None
        if self._watcher is not None:
            self._watcher.flush()

    def forward(self, signum: int) -> int:
        """Pass a signal to every running command; returns how many received it.

        USR1 and USR2 go to each command's main process only: a script's helpers
        with no handler for them would die. WINCH goes to the whole group, as the
        terminal would send it to a foreground job.
        """
        leader_only = signum in (signal.SIGUSR1, signal.SIGUSR2)
        sent = 0
        for child in list(self._children.values()):
            if child.running and (child.send_leader(signum) if leader_only else child.send(signum)):
                sent += 1
        return sent

    def _reap(self) -> None:
        """Reap every exited child: ours, the watcher, and orphans adopted as PID 1.

        One waitpid(-1) per exit, not one per live child: stopping a group of
        hundreds stays linear. The supervisor owns all of longrun's children.
        A command stopped by SIGTTIN/SIGTTOU (it wants the terminal) is reported,
        or it would wait silently forever.
        """
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.get(pid)
            if os.WIFSTOPPED(status):
                stop = os.WSTOPSIG(status)
                if child is not None and stop in _TTY_STOPS and self.on_tty_stop is not None:
                    self.on_tty_stop(pid, stop)
                continue
            if child is not None:
                child._set_exited(status)
            elif self._watcher is not None:
                self._watcher.reaped(pid)


def reraise(signum: int) -> None:
    """Die by ``signum`` so the caller sees it (shell: 128+N, systemd: a clean stop)."""
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)


# Seconds an exited process group may stay on the watcher's list (see Supervisor.release).
_RELEASE_DELAY = 1.0
# Adopted orphans are looked for again this often while they are being stopped,
# and given up on this long after SIGKILL.
_ORPHAN_POLL = 0.05
_ORPHAN_GIVE_UP = 5.0


def _signal_tree(pid: int, signum: int) -> None:
    """Signal an adopted process, and its whole group when it leads one."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


_TTY_STOPS = (signal.SIGTTIN, signal.SIGTTOU)


def _name_working_directory(env: dict[str, str], cwd: str) -> None:
    """PWD names the command's working directory, as a shell makes it at start.

    A command string of plain words runs without ``sh -c``, and a list without a
    shell at all: the PWD inherited from longrun would name longrun's directory.
    As sh does, an inherited PWD that names the same directory (by another path,
    through a symlink) is kept.
    """
    inherited = env.get("PWD")
    if inherited and os.path.isabs(inherited):
        try:
            if os.path.samefile(inherited, cwd):
                return
        except OSError:
            pass
    env["PWD"] = os.path.abspath(cwd)


def _copier(
    pipe: tuple[int, int],
    stream: int,
    patterns: tuple[str, ...],
    on_match: Callable[[str], None] | None,
    spec: LaunchSpec,
    tail: StderrTail | None = None,
) -> StreamCopier | LineCopier:
    """The copier of one of the command's streams (1 or 2) into longrun's own."""
    # Imported here: a run whose streams are all inherited never needs them.
    from longrun_cli.engine.streams import copier_for

    return copier_for(
        pipe, stream, patterns, spec.output_prefix, on_match, spec.log, spec.output_stamp,
        tail, repeated=spec.repeated_patterns,
    )  # fmt: skip


def _pipe(opened: list[int]) -> tuple[int, int]:
    pipe = os.pipe()
    opened += pipe
    return pipe


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)
