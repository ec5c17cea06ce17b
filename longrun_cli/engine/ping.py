"""``--ping URL``: the healthchecks.io protocol, sent in order, never in the task's way.

``URL/start`` when an attempt starts, ``URL`` when a run succeeds, ``URL/fail``
(the stderr tail as the body, at most 10 KB) when a failure is not retried.
Pings go out one at a time from a queue, so a slow endpoint delays no run; each
is bounded to ``PATIENCE`` seconds, and one that fails or times out is logged and
changes nothing else. At the end longrun waits for the queue, within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from longrun_cli.engine.http import http_status

PATIENCE = 5.0  # seconds for one ping
BODY_LIMIT = 10_000  # bytes of stderr tail in a /fail ping


class Pinger:
    def __init__(self, url: str, warn: Callable[[str], None]) -> None:
        self._url = url.rstrip("/")
        self._warn = warn
        self._queue: asyncio.Queue[tuple[str, bytes | None] | None] = asyncio.Queue()
        self._sender = asyncio.ensure_future(self._send_all())

    def start(self) -> None:
        self._queue.put_nowait(("/start", None))

    def success(self) -> None:
        self._queue.put_nowait(("", None))

    def fail(self, tail: bytes) -> None:
        self._queue.put_nowait(("/fail", tail[-BODY_LIMIT:]))

    async def close(self) -> None:
        """Send what is queued (each within PATIENCE), then stop."""
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender

    async def _send_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            suffix, body = item
            url = self._url + suffix
            try:
                status = await asyncio.wait_for(http_status(url, body), PATIENCE)
            except TimeoutError:
                self._warn(f"ping {url}: no answer within {PATIENCE:g}s")
            except (OSError, ValueError) as exc:
                self._warn(f"ping {url}: {exc.strerror if isinstance(exc, OSError) else exc}")
            else:
                if not 200 <= status < 300:
                    self._warn(f"ping {url}: answered {status}")
