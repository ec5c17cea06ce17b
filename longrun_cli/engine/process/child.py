"""One attempt's process: its leader, its process group and its stream copiers.

Signals go to the group until it is found empty, never after (see the package's
docstring for why pids are safe to signal here).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from longrun_cli.engine.launch import ExitStatus, LaunchSpec
from longrun_cli.engine.taskio import first_done

if TYPE_CHECKING:
    from longrun_cli.engine.output import LineCopier
    from longrun_cli.engine.process import Supervisor
    from longrun_cli.engine.streams import StreamCopier


class Child:
    """A running attempt: its leader pid, its process group and its stream copier."""

    def __init__(self, supervisor: Supervisor, pid: int, spec: LaunchSpec) -> None:
        self.pid = pid
        self.own_group = spec.own_group
        # Only what stopping needs: the spec (and its environment) is not kept.
        self._kill_after = spec.kill_after
        self._stop_signal = spec.stop_signal
        self._supervisor = supervisor
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._stdout_copier: StreamCopier | LineCopier | None = None
        self._stderr_copier: StreamCopier | LineCopier | None = None
        # Once the leader is reaped and its group found empty, the group id is free
        # for the kernel to hand out again: never signal it after that.
        self._group_gone = False

    @property
    def target(self) -> str:
        """What the watcher kills: the whole group, or just the pid in foreground mode."""
        return f"-{self.pid}" if self.own_group else str(self.pid)

    @property
    def exited(self) -> asyncio.Future[int]:
        return self._exited

    @property
    def running(self) -> bool:
        return not self._exited.done()

    def send(self, signum: int) -> bool:
        """Signal the process group (or the pid); False when nothing was there."""
        if self.own_group and not self._group_gone:
            return _delivered(os.killpg, self.pid, signum)
        return self.send_leader(signum)

    def send_leader(self, signum: int) -> bool:
        """Signal the command's main process only (USR1/USR2 are meant for it)."""
        return self.running and _delivered(os.kill, self.pid, signum)

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
        exited = self._exited
        status = exited.result() if exited.done() else await asyncio.shield(exited)
        if not self._group_gone:
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

    async def _drain(self, copier: StreamCopier | LineCopier) -> tuple[frozenset[str], bool]:
        """Wait for end of stream, unless only an escaped process keeps it open.

        The leader is gone and its group swept, so a pipe that stays open after
        the grace period, with nothing in it, is held by a process that left the
        group (setsid). Copying goes on in the background; the process is
        stopped when longrun ends. Output still flowing is always waited for.
        """
        hits = copier.ended()
        if hits is not None:  # usual: the end of the pipe came with the exit
            return hits, False
        grace = max(self._kill_after, 0.5)
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
            await first_done(contenders, grace)
        return not self.running

    async def _sweep_group(self) -> None:
        """Stop what the command left in its process group once the leader is gone.

        As systemd does with a unit's leftovers: the stop signal, then SIGKILL after
        the grace period, or at once after a second stop signal to longrun. The
        kernel never reuses a pid that still names a live process group, and a
        group found empty is never signalled again, so this cannot hit a stranger.
        Polling is fine here: it only runs when something was left.
        """
        if not self.own_group or not self.send_stop(self._stop_signal):
            self._group_gone = True
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._kill_after
        kill_now = self._supervisor.kill_now
        while self.send(0):
            if loop.time() >= deadline or (kill_now is not None and kill_now.done()):
                self.send(signal.SIGKILL)
                break
            await asyncio.sleep(0.01)
        self._group_gone = True

    def _set_exited(self, status: int) -> None:
        """Called by the reaper, in the same step as waitpid: nothing can spawn in between."""
        if not self._exited.done():
            self._exited.set_result(status)
        if self.own_group:
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                self._group_gone = True
            except PermissionError:
                pass  # a member changed its user id: the group still exists


def _delivered(send: Callable[[int, int], None], target: int, signum: int) -> bool:
    try:
        send(target, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
