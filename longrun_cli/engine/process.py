"""The one module that starts, signals and reaps processes.

Every ``os.kill``/``os.killpg`` of longrun lives here. Children are reaped from a
SIGCHLD handler on the event loop (no thread per child, no polling); as PID 1 the
same handler also reaps every orphan the kernel hands to longrun. Every signal
handler of longrun is set up here too (SignalRouter).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from longrun_cli.engine.streams import StreamCopier

_F_SETPIPE_SZ = 1031  # Linux fcntl: a 1 MiB pipe means 16x fewer reads than the default

# A watcher that outlives a SIGKILLed longrun: it holds the read end of a pipe that
# only longrun can write to, and on EOF kills every process group still registered.
# It replaces PR_SET_PDEATHSIG, which needs code in the child between fork and
# exec (preexec_fn disables vfork and costs ~1.7 ms per spawn).
_SENTINEL_SCRIPT = """
trap '' HUP INT QUIT
live=' '
while read -r op target; do
  case $op in
    +) live="$live$target " ;;
    -) case $live in *" $target "*) live="${live%% $target *} ${live#* $target }" ;; esac ;;
  esac
done
for target in $live; do kill -9 $target 2>/dev/null; done
"""


class SpawnError(Exception):
    """The command could not be started; ``status`` is 126 or 127 as a shell would give."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LaunchSpec(NamedTuple):
    """How to start one attempt; ``own_group=False`` is ``--foreground``."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str | None = None
    own_group: bool = True
    stderr_patterns: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM
    kill_after: float = 10.0
    # Group mode: both streams copied line by line behind this prefix (b"" = none).
    output_prefix: bytes | None = None
    # Readiness: ``on_stdout_match`` is called when one of these appears on stdout.
    stdout_patterns: tuple[str, ...] = ()
    on_stdout_match: Callable[[str], None] | None = None
    stdin_null: bool = False
    quiet: bool = False  # readiness probes: output discarded


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


class Child:
    """A running attempt: its leader pid, its process group and its stream copier."""

    def __init__(self, supervisor: Supervisor, pid: int, spec: LaunchSpec) -> None:
        self.pid = pid
        self.own_group = spec.own_group
        self._spec = spec
        self._supervisor = supervisor
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._stdout_copier: StreamCopier | None = None
        self._stderr_copier: StreamCopier | None = None

    @property
    def target(self) -> str:
        """What the sentinel kills: the whole group, or just the pid in foreground mode."""
        return f"-{self.pid}" if self.own_group else str(self.pid)

    @property
    def exited(self) -> asyncio.Future[int]:
        return self._exited

    @property
    def running(self) -> bool:
        return not self._exited.done()

    def send(self, signum: int) -> bool:
        """Signal the process group (or the pid); False when nothing was there."""
        try:
            if self.own_group:
                os.killpg(self.pid, signum)
            elif self.running:
                os.kill(self.pid, signum)
            else:
                return False
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def send_stop(self, signum: int) -> bool:
        """The stop signal, then SIGCONT, as systemd does.

        A suspended process (Ctrl-Z, SIGSTOP) acts on the stop signal only once it
        runs again; without SIGCONT it would sit out the whole grace period.
        """
        sent = self.send(signum)
        if sent and signum not in (signal.SIGKILL, signal.SIGCONT):
            self.send(signal.SIGCONT)
        return sent

    async def wait(self) -> ExitStatus:
        """Wait for the leader, clear out what it left in its group, and drain stderr."""
        status = await asyncio.shield(self._exited)
        await self._sweep_group()
        hits: frozenset[str] = frozenset()
        held = False
        if self._stdout_copier is not None:
            _, out_held = await self._drain(self._stdout_copier)
            held = held or out_held
        if self._stderr_copier is not None:
            hits, err_held = await self._drain(self._stderr_copier)
            held = held or err_held
        self._supervisor.release(self)
        result = ExitStatus.from_wait_status(status)
        return ExitStatus(result.code, result.signal, hits, held)

    async def _drain(self, copier: StreamCopier) -> tuple[frozenset[str], bool]:
        """Wait for end of stream, unless only an escaped process keeps it open.

        The leader is gone and its group swept, so a pipe that stays open after
        the grace period, with nothing in it, is held by a process that left the
        group (setsid). Copying goes on in the background; the process is
        stopped when longrun ends. Output still flowing is always waited for.
        """
        grace = max(self._spec.kill_after, 0.5)
        while True:
            try:
                return await asyncio.wait_for(copier.finish(), timeout=grace), False
            except TimeoutError:
                if copier.caught_up():
                    return copier.hits_so_far(), True

    async def stop(self, signum: int, grace: float, kill_now: asyncio.Future[None]) -> bool:
        """Stop signal, then SIGKILL after ``grace`` seconds or as soon as ``kill_now`` is set.

        Returns True when SIGKILL was needed.
        """
        self.send_stop(signum)
        if await self._exit_within(grace, kill_now):
            return False
        self.send(signal.SIGKILL)
        await asyncio.shield(self._exited)
        return True

    async def _exit_within(self, grace: float, kill_now: asyncio.Future[None]) -> bool:
        if not kill_now.done():
            contenders: list[asyncio.Future[Any]] = [self._exited, kill_now]
            await asyncio.wait(contenders, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        return not self.running

    async def _sweep_group(self) -> None:
        """Stop what the command left in its process group once the leader is gone.

        As systemd does with a unit's leftovers: the stop signal, then SIGKILL after
        the grace period. The kernel never reuses a pid that still names a live
        process group, so signalling the group after the leader was reaped cannot
        hit a stranger. Polling is fine here: it only runs when something was left.
        """
        if not self.own_group or not self.send_stop(self._spec.stop_signal):
            return
        deadline = asyncio.get_running_loop().time() + self._spec.kill_after
        while self.send(0):
            if asyncio.get_running_loop().time() >= deadline:
                self.send(signal.SIGKILL)
                break
            await asyncio.sleep(0.01)

    def _set_exited(self, status: int) -> None:
        if not self._exited.done():
            self._exited.set_result(status)


class Supervisor:
    """Owns every child of longrun: spawning, reaping, forwarding and final clean-up."""

    def __init__(self) -> None:
        self._children: dict[int, Child] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sentinel: _Sentinel | None = None
        self._release_timer: asyncio.TimerHandle | None = None

    def install(self, router: SignalRouter) -> None:
        """Start reaping on SIGCHLD; call from inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        router.route(signal.SIGCHLD, self._on_sigchld)
        if os.getpid() != 1:
            _become_subreaper()

    def _on_sigchld(self, _signum: int) -> None:
        self._reap()

    async def stop_orphans(self, grace: float) -> int:
        """Stop processes that escaped their group (``setsid``) and were adopted by longrun.

        As a child subreaper (or PID 1) longrun inherits such orphans; at the end of
        the run they get the stop signal, then SIGKILL after ``grace`` seconds.
        Being our children, their pids cannot be reused before we reap them.
        Returns how many there were.
        """
        adopted = self._adopted()
        found = len(adopted)
        for pid in adopted:
            _signal_tree(pid, signal.SIGTERM)
            _signal_tree(pid, signal.SIGCONT)
        deadline = time.monotonic() + grace
        while adopted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            adopted = [pid for pid in adopted if pid in self._adopted()]
        for pid in adopted:
            _signal_tree(pid, signal.SIGKILL)
        return found

    def _adopted(self) -> list[int]:
        known = set(self._children)
        if self._sentinel is not None:
            known.add(self._sentinel.pid)
        return [pid for pid in _children_of_this_process() if pid not in known]

    def close(self) -> None:
        """Kill anything still running, stop reaping and let the sentinel go."""
        for child in list(self._children.values()):
            child.send(signal.SIGKILL)
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if self._sentinel is not None:
            # Exited groups must not be signalled when the watcher sees EOF.
            self._sentinel.flush()
            self._sentinel.close()

    def spawn(self, spec: LaunchSpec) -> Child:
        """Start one attempt; raises SpawnError for a missing or non-executable command."""
        if self._sentinel is None and spec.own_group:
            self._sentinel = _Sentinel.start()
        lined = spec.output_prefix is not None
        # A stream nobody reads is inherited: no copying at all.
        out_pipe = os.pipe() if lined or spec.stdout_patterns else None
        err_pipe = os.pipe() if lined or spec.stderr_patterns else None
        fds = [fd for pipe in (out_pipe, err_pipe) if pipe for fd in pipe]
        quiet = subprocess.DEVNULL if spec.quiet else None
        try:
            popen = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL if spec.stdin_null else None,
                stdout=out_pipe[1] if out_pipe else quiet,
                stderr=err_pipe[1] if err_pipe else quiet,
                process_group=0 if spec.own_group else None,
            )
        except FileNotFoundError as exc:
            _close(*fds)
            missing = exc.filename if exc.filename else spec.argv[0]
            if spec.cwd is not None and missing == spec.cwd:
                raise SpawnError(f"working directory not found: {spec.cwd}", 127) from None
            raise SpawnError(f"command not found: {spec.argv[0]}", 127) from None
        except PermissionError:
            _close(*fds)
            raise SpawnError(f"permission denied: {spec.argv[0]}", 126) from None
        except OSError as exc:
            _close(*fds)
            raise SpawnError(f"cannot execute {spec.argv[0]}: {exc.strerror}", 126) from None
        # Popen would otherwise wait for (and might reap) the pid on its own.
        popen.returncode = 0
        child = Child(self, popen.pid, spec)
        self._children[child.pid] = child
        if self._sentinel is not None:
            self._sentinel.watch(child.target)
        if out_pipe is not None:
            child._stdout_copier = _copier(
                out_pipe, 1, spec.stdout_patterns, spec.output_prefix, spec.on_stdout_match
            )
        if err_pipe is not None:
            child._stderr_copier = _copier(err_pipe, 2, spec.stderr_patterns, spec.output_prefix)
        self._reap()
        return child

    def release(self, child: Child) -> None:
        self._children.pop(child.pid, None)
        if self._sentinel is None:
            return
        # An exited group stays listed for at most _RELEASE_DELAY: were longrun
        # killed then, the watcher would signal a group id that is almost surely
        # still unused (ids are reused only after the pid space wraps).
        self._sentinel.release_later(child.target)
        if self._release_timer is None and self._loop is not None:
            self._release_timer = self._loop.call_later(_RELEASE_DELAY, self._flush_releases)

    def _flush_releases(self) -> None:
        self._release_timer = None
        if self._sentinel is not None:
            self._sentinel.flush()

    def forward(self, signum: int) -> int:
        """Pass a signal to every running command; returns how many received it."""
        return sum(
            1 for child in list(self._children.values()) if child.running and child.send(signum)
        )

    def _reap(self) -> None:
        """Reap every exited child: ours, the sentinel, and orphans adopted as PID 1.

        One waitpid(-1) per exit, not one per live child: stopping a group of
        hundreds stays linear. The supervisor owns all of longrun's children.
        """
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.get(pid)
            if child is not None:
                child._set_exited(status)
            elif self._sentinel is not None:
                self._sentinel.reaped(pid)


class SignalRouter:
    """Delivers signals to callbacks on the event loop.

    asyncio's add_signal_handler checks each call against ``signal.valid_signals()``,
    which builds a set of ~64 enum members every time (and again when the loop
    closes): ~1.6 M instructions of start-up for SIGCHLD alone. One Python-level
    handler that hops onto the loop does the same job. The router's own wakeup
    socket wakes the loop even when another thread took the signal; a burst of
    exits (hundreds of children stopping at once) can fill it, and a dropped
    wakeup byte is harmless (each wake-up reaps every exited child), so Python is
    told not to print a traceback for it.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._callbacks: dict[int, Callable[[int], object]] = {}
        self._previous: dict[int, Any] = {}
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._loop.add_reader(self._wake_read.fileno(), self._drain)
        self._previous_wakeup = signal.set_wakeup_fd(
            self._wake_write.fileno(), warn_on_full_buffer=False
        )

    def route(self, signum: int, callback: Callable[[int], object]) -> None:
        self._callbacks[signum] = callback
        self._previous[signum] = signal.signal(signum, self._deliver)
        # Restart interrupted system calls, as asyncio's own handlers do: SIGCHLD
        # comes with every attempt, and not every C library retries on EINTR.
        signal.siginterrupt(signum, False)

    def close(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup)
        self._loop.remove_reader(self._wake_read.fileno())
        self._wake_read.close()
        self._wake_write.close()

    def _deliver(self, signum: int, _frame: object) -> None:
        self._loop.call_soon_threadsafe(self._callbacks[signum], signum)

    def _drain(self) -> None:
        # The bytes only wake the loop; the handlers above do the work.
        with contextlib.suppress(OSError):
            while self._wake_read.recv(4096):
                pass


def reraise(signum: int) -> None:
    """Die by ``signum`` so the caller sees it (shell: 128+N, systemd: a clean stop)."""
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)


def _copier(
    pipe: tuple[int, int],
    dest_fd: int,
    patterns: tuple[str, ...],
    prefix: bytes | None,
    on_match: Callable[[str], None] | None = None,
) -> StreamCopier:
    # Imported here: a run whose streams are all inherited never needs it.
    from longrun_cli.engine.streams import CHUNK, StreamCopier

    read_fd, write_fd = pipe
    os.close(write_fd)
    if prefix is None:
        # Only exec's single copied stream gets a big pipe: a group has hundreds,
        # and past the per-user pipe-page limit the kernel shrinks new pipes to
        # one page.
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, _F_SETPIPE_SZ, CHUNK)
    return StreamCopier(read_fd, dest_fd, patterns, prefix=prefix, on_match=on_match)


_PR_SET_CHILD_SUBREAPER = 36
# Seconds an exited process group may stay on the watcher's list (see Supervisor.release).
_RELEASE_DELAY = 1.0


def _become_subreaper() -> bool:
    """Adopt orphaned descendants (a daemon that left its group with setsid)."""
    args = (_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        # ctypes' Python layer costs ~1.5 ms of every start; its C core can call
        # prctl alone. The public API stays the fallback if that core changes.
        import _ctypes

        # None opens the running program itself, as dlopen(3) allows; typeshed disagrees.
        program = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]
        prctl = _ctypes.dlsym(program, "prctl")
        return bool(_ctypes.call_function(prctl, args) == 0)
    except (ImportError, AttributeError, OSError):
        pass
    import ctypes

    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(*args) == 0)
    except (OSError, AttributeError):
        return False


def _children_of_this_process() -> list[int]:
    pids: list[int] = []
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in threads:
        try:
            with open(f"/proc/self/task/{tid}/children") as children:
                pids += [int(pid) for pid in children.read().split()]
        except OSError:
            continue
    return pids


def _signal_tree(pid: int, signum: int) -> None:
    """Signal an adopted process, and its whole group when it leads one."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


class _Sentinel:
    """The watcher process behind the parent-death guarantee (see _SENTINEL_SCRIPT)."""

    def __init__(self, popen: subprocess.Popen[bytes], write_fd: int) -> None:
        self._popen = popen
        self._write_fd = write_fd
        self._released: list[str] = []

    @classmethod
    def start(cls) -> _Sentinel | None:
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                ["/bin/sh", "-c", _SENTINEL_SCRIPT],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            _close(read_fd, write_fd)
            return None
        os.close(read_fd)
        return cls(popen, write_fd)

    def watch(self, target: str) -> None:
        # Releases ride along: every write wakes the watcher, which then competes
        # with the attempt just started (~0.15 ms a write, measured).
        self._send(self._take_releases() + f"+ {target}\n")

    def release_later(self, target: str) -> None:
        """Forget ``target`` with the next write; the caller flushes within a second."""
        self._released.append(target)

    def flush(self) -> None:
        if self._released:
            self._send(self._take_releases())

    def _take_releases(self) -> str:
        lines = "".join(f"- {old}\n" for old in self._released)
        self._released.clear()
        return lines

    @property
    def pid(self) -> int:
        return self._popen.pid

    def reaped(self, pid: int) -> None:
        if pid == self._popen.pid:
            self._popen.returncode = 0  # Popen must not wait for it again

    def close(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def _send(self, line: str) -> None:
        if self._write_fd < 0:
            return
        try:
            os.write(self._write_fd, line.encode())
        except OSError:
            self.close()
