"""``--lock etcd://HOST:PORT[,HOST:PORT...]/KEY``: a lease-based lock in etcd v3.

Taking it: a lease of ``--lock-ttl`` and one transaction that creates KEY with
that lease if KEY does not exist (the create revision of the key is the fencing
token: it grows with every acquisition). While held, the lease is renewed every
quarter of the TTL. The safety rule of SPEC §11: the hold is *lost* (and the
command stopped) as soon as the lease might expire before the command could be
stopped, that is ``grace`` before the last renewal's lease runs out, with no
renewal since. Time is the monotonic clock, which keeps counting while longrun
is frozen (SIGSTOP): a holder thawed after its lease ran out finds its hold
invalid before anything else runs, and must take the lock again.

Client: aetcd (asyncio, maintained, etcd v3 over gRPC), imported only here.
Endpoints are tried in order; on an error the next one is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import aetcd

from longrun_cli.locks import Hold, Locker
from longrun_cli.policy.duration import to_seconds
from longrun_cli.policy.lockurl import LockSpec

POLL = 0.5  # seconds between looks at a key held by another longrun
RPC_BOUND = 2.0  # seconds any one call to etcd may take


class EtcdLocker(Locker):
    def __init__(self, spec: LockSpec, log: Callable[[str], None], grace: float) -> None:
        self._spec = spec
        self._key = spec.key.encode()
        self._ttl = to_seconds(spec.ttl)
        self._grace = grace
        self._log = log
        self._endpoint = 0
        self._client: Any = None
        self._last_problem: str | None = None

    async def client(self) -> Any:
        if self._client is None:
            host, port = self._spec.endpoints[self._endpoint]
            self._client = aetcd.Client(host=host, port=port, timeout=int(RPC_BOUND) or 1)
            await asyncio.wait_for(self._client.connect(), RPC_BOUND)
        return self._client

    async def failed(self, exc: BaseException) -> None:
        """An RPC failed: log it once per kind of problem, move to the next endpoint."""
        problem = f"{type(exc).__name__}: {exc}".strip().split("\n")[0][:200]
        if problem != self._last_problem:
            self._last_problem = problem
            host, port = self._spec.endpoints[self._endpoint]
            self._log(f"etcd at {host}:{port}: {problem}")
        await self.close()
        self._endpoint = (self._endpoint + 1) % len(self._spec.endpoints)

    async def acquire(self, wait: float | None) -> Hold | None:
        loop = asyncio.get_running_loop()
        give_up = None if wait is None else loop.time() + wait
        while True:
            try:
                hold = await self._try()
            except Exception as exc:  # any etcd failure: the next endpoint, and again
                await self.failed(exc)
                hold = None
            else:
                self._last_problem = None
            if hold is not None:
                return hold
            if give_up is not None and loop.time() >= give_up:
                return None
            await asyncio.sleep(POLL if give_up is None else min(POLL, give_up - loop.time()))

    async def _try(self) -> EtcdHold | None:
        client = await self.client()
        existing = await asyncio.wait_for(client.get(self._key), RPC_BOUND)
        if existing is not None:
            return None
        sent = time.monotonic()
        lease = await asyncio.wait_for(client.lease(int(self._ttl)), RPC_BOUND)
        # Who holds it, for `etcdctl get KEY`: host, pid, and a nonce of this acquisition.
        owner = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:12]}".encode()
        txn = client.transactions
        taken, responses = await asyncio.wait_for(
            client.transaction(
                compare=[txn.create(self._key) == 0],
                success=[txn.put(self._key, owner, lease=lease)],
                failure=[],
            ),
            RPC_BOUND,
        )
        if not taken:  # another longrun was faster
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lease.revoke(), RPC_BOUND)
            return None
        token = int(responses[0].response_put.header.revision)
        return EtcdHold(self, lease, token, sent + self._ttl, self._grace, self._ttl)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), RPC_BOUND)


class EtcdHold(Hold):
    def __init__(
        self,
        locker: EtcdLocker,
        lease: Any,
        token: int,
        expires_at: float,
        grace: float,
        ttl: float,
    ) -> None:
        super().__init__(token)
        self._locker = locker
        self._lease = lease
        self._ttl = ttl
        self._grace = grace
        # The lease certainly lives until ``expires_at`` (monotonic): counted from
        # before the request that granted or renewed it.
        self.expires_at = expires_at
        self._renewing = asyncio.ensure_future(self._renew())
        self._watching = asyncio.ensure_future(self._watch())

    def valid(self) -> bool:
        return not self.lost.done() and time.monotonic() < self.expires_at - self._grace

    async def _renew(self) -> None:
        while not self.lost.done():
            await asyncio.sleep(self._ttl / 4)
            sent = time.monotonic()
            if sent >= self.expires_at:
                self.lose("the lease expired before it could be renewed (was longrun frozen?)")
                return
            try:
                client = await self._locker.client()
                reply = await asyncio.wait_for(client.refresh_lease(self._lease.id), RPC_BOUND)
            except Exception as exc:  # any etcd failure: the next endpoint, and again
                await self._locker.failed(exc)
                continue
            if reply is None or reply.TTL <= 0:
                self.lose("etcd says the lease has expired")
                return
            self.expires_at = max(self.expires_at, sent + reply.TTL)

    async def _watch(self) -> None:
        """Lose the hold ``grace`` before the lease could run out, unless renewed since."""
        while not self.lost.done():
            remaining = self.expires_at - self._grace - time.monotonic()
            if remaining <= 0:
                self.lose(
                    f"the lease could not be renewed for {self._ttl - self._grace:.1f}s "
                    "(etcd unreachable?)"
                )
                return
            await asyncio.sleep(remaining)

    async def release(self) -> None:
        self._renewing.cancel()
        self._watching.cancel()
        self.lose("released")
        # Revoking deletes the key at once: a standby takes over without waiting out the TTL.
        with contextlib.suppress(Exception):
            client = await self._locker.client()
            await asyncio.wait_for(client.revoke_lease(self._lease.id), RPC_BOUND)
