"""``--lock file:PATH``: flock on PATH (created 0600), for one machine.

The command inherits the locked descriptor, as under flock(1): the kernel releases
the lock only when longrun and every process of the command are gone, however
they die, so a SIGKILLed holder's command cannot overlap the next. The file is
never removed (a new file at the path would be a second lock); a hold whose file
was removed or replaced since is lost, checked every second. The fencing token is
a counter kept in the file itself, raised under the lock at each acquisition.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os

from longrun_cli.locks import Hold, Locker, LockUnusable

POLL = 0.05  # seconds between tries while another process holds it
CHECK = 1.0  # seconds between checks that the file is still the one locked


class FileHold(Hold):
    def __init__(self, fd: int, path: str, token: int) -> None:
        super().__init__(token, (fd,))
        self._fd = fd
        self._path = path
        self._watch = asyncio.ensure_future(self._check_file())

    async def _check_file(self) -> None:
        mine = os.fstat(self._fd).st_ino
        while not self.lost.done():
            await asyncio.sleep(CHECK)
            try:
                now = os.stat(self._path).st_ino
            except OSError:
                now = None
            if now != mine:
                self.lose(f"the lock file {self._path} was removed or replaced")

    async def release(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(OSError):
            os.close(self._fd)  # the kernel drops the flock with it
        self.lose("released")


class FileLocker(Locker):
    def __init__(self, path: str) -> None:
        self._path = path

    async def acquire(self, wait: float | None) -> Hold | None:
        loop = asyncio.get_running_loop()
        give_up = None if wait is None else loop.time() + wait
        while True:
            fd = self._try()
            if fd is not None:
                return FileHold(fd, self._path, _raise_token(fd))
            if give_up is not None and loop.time() >= give_up:
                return None
            await asyncio.sleep(POLL)

    def _try(self) -> int | None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise LockUnusable(f"--lock {self._path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(self._path).st_ino
        except OSError:
            same = False
        if not same:  # removed or replaced between open and flock: not the lock any more
            os.close(fd)
            return None
        return fd


def _raise_token(fd: int) -> int:
    """The counter in the file, plus one, written back (we hold the lock)."""
    raw = os.pread(fd, 32, 0).strip()
    token = int(raw) + 1 if raw.isdigit() and len(raw) < 19 else 1
    data = f"{token}\n".encode()
    with contextlib.suppress(OSError):  # a full disk: the token is still ours, just not kept
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    return token
