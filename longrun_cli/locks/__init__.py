"""``--lock``: at most one longrun among all those using the same lock runs (SPEC §11).

Two kinds behind one small interface: ``file`` (flock, one machine) and ``etcd``
(a lease in etcd v3, a fleet). A ``Locker`` waits for the lock and gives a
``Hold``: its fencing token, whether it is still certainly held (``valid``,
asked before every attempt), and ``lost``, resolved with the reason the moment
the hold can no longer be trusted. The engine sees only this interface; the etcd
client is imported only by an etcd lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from longrun_cli.policy.lockurl import LockSpec


class LockUnusable(Exception):
    """The lock cannot be used at all (its file cannot be opened): one line, exit 125."""


class Hold:
    """A lock held: ``token`` grows with each acquisition, across holders."""

    def __init__(self, token: int, fds: tuple[int, ...] = ()) -> None:
        self.token = token
        # Descriptors the command inherits: a file lock then lives as long as any
        # process of the command does, as with flock(1), even if longrun is killed.
        self.fds = fds
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def valid(self) -> bool:
        return not self.lost.done()

    def lose(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)

    async def release(self) -> None:
        raise NotImplementedError


class Locker:
    async def acquire(self, wait: float | None) -> Hold | None:
        """The lock, once had; None when ``wait`` seconds passed first (None: forever)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


def locker_for(spec: LockSpec, log: Callable[[str], None], grace: float) -> Locker:
    """``grace``: how long stopping the command may take once the hold is in doubt."""
    if spec.kind == "file":
        from longrun_cli.locks.filelock import FileLocker

        return FileLocker(spec.path)
    try:
        from longrun_cli.locks.etcdlock import EtcdLocker
    except ImportError as exc:
        from longrun_cli import DISTRIBUTION

        raise LockUnusable(
            f"--lock {spec.url}: needs the etcd client: pip install '{DISTRIBUTION}[etcd]' ({exc})"
        ) from None
    return EtcdLocker(spec, log, grace)
