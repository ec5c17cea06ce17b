"""The control server a running group serves on its socket (SPEC §8).

It costs nothing while idle: no timer runs unless a client is connected, and
status changes are pushed to watchers as they happen, never polled. No client
can stall the group or grow its memory without bound:

- a request line is read with a 64 KiB limit (a longer one is answered and the
  connection closed);
- every write waits for the client at most ``WRITE_PATIENCE`` seconds, and a
  follower's pending lines are capped (the excess is counted and reported as
  dropped), a watcher only ever gets the latest state;
- a connection that sends nothing for ``IDLE_LIMIT`` seconds is closed, and past
  ``MAX_CLIENTS`` connections the one idle longest makes room for the newcomer;
- a peer of another user is refused (SO_PEERCRED), unless it is root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from longrun_cli.control import protocol
from longrun_cli.control.paths import remove
from longrun_cli.engine.events import Event, Level
from longrun_cli.engine.taskstate import Refused, select

if TYPE_CHECKING:
    from longrun_cli.control.paths import Listening
    from longrun_cli.engine.events import EventSink
    from longrun_cli.engine.runner import Runner
    from longrun_cli.engine.taskstate import TaskView

MAX_CLIENTS = 256
BACKLOG = 1024  # a burst of connections waits to be accepted rather than being refused
IDLE_LIMIT = 60.0  # seconds a connection may stay without a request (not while streaming)
WRITE_PATIENCE = 10.0  # seconds a client may leave a response unread before it is dropped
WATCH_PAUSE = 0.1  # at most ten status updates a second to a watcher
FOLLOW_BACKLOG = 512 * 1024  # bytes of lines (and their overhead) waiting for one follower
PENDING_OVERHEAD = 120  # what Python spends on each waiting line beyond its bytes
BATCH_BYTES = 64 * 1024  # bytes of lines in one logs response
LINGER = 2.0  # seconds spent discarding what a closed-on client still sends


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = asyncio.current_task()
        self.last_active = asyncio.get_running_loop().time()
        self.streaming = False

    def close(self) -> None:
        self.writer.close()


class ControlServer:
    def __init__(
        self,
        runner: Runner,
        listening: Listening,
        group_name: str,
        sink: EventSink,
        on_shutdown: Callable[[], None],
    ) -> None:
        self._runner = runner
        self._listening = listening
        self._group = group_name
        self._sink = sink
        self._on_shutdown = on_shutdown
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[_Client, None] = {}  # oldest first
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, sock=self._listening.sock, limit=protocol.MAX_REQUEST, backlog=BACKLOG
        )

    async def close(self) -> None:
        """Stop serving; every client sees end of file; the socket file goes."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        remove(self._listening)
        clients = list(self._clients)
        for client in clients:
            client.close()
            if client.handler is not None:
                client.handler.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.writer.wait_closed(), 1.0)
        self._listening.sock.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(reader, writer)
        try:
            if self._closing:
                return
            refusal = _peer_refusal(writer)
            if refusal is not None:
                await self._send(client, protocol.error(refusal, protocol.FORBIDDEN))
                # A client that connects and writes at once must still read the refusal:
                # closing with its request unread would reset the connection.
                await _discard_then_close(client)
                return
            self._make_room()
            self._clients[client] = None
            await self._conversation(client)
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._clients.pop(client, None)
            client.close()

    def _make_room(self) -> None:
        if len(self._clients) < MAX_CLIENTS:
            return
        idle = [c for c in self._clients if not c.streaming] or list(self._clients)
        oldest = min(idle, key=lambda c: c.last_active)
        self._clients.pop(oldest, None)
        with contextlib.suppress(Exception):
            oldest.writer.write(protocol.error("too many connections", protocol.BUSY))
        oldest.close()
        if oldest.handler is not None:
            oldest.handler.cancel()

    async def _conversation(self, client: _Client) -> None:
        while True:
            try:
                line = await asyncio.wait_for(client.reader.readline(), IDLE_LIMIT)
            except ValueError:  # over the limit: the rest of the line cannot be skipped safely
                message = f"request longer than {protocol.MAX_REQUEST} bytes"
                await self._send(client, protocol.error(message, protocol.TOO_LONG))
                await _discard_then_close(client)
                return
            if not line:
                return
            client.last_active = asyncio.get_running_loop().time()
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                request = protocol.parse_request(line)
            except protocol.ProtocolError as exc:
                await self._send(client, protocol.error(str(exc), exc.code))
                continue
            await self._handle(client, request)

    async def _handle(self, client: _Client, request: protocol.Request) -> None:
        verb = request.verb
        if verb == "status":
            await self._send(client, self._status())
            if request.watch:
                await self._watch(client)
        elif verb == "logs":
            await self._logs(client, request)
        elif verb == "shutdown":
            await self._send(client, protocol.encode(ok=True))
            self._note("shutdown requested (longrun ctl)")
            self._on_shutdown()
            # The client waits for the end of file: its command returns once the
            # group has stopped (the connection is closed with the server).
            client.streaming = True
            await asyncio.get_running_loop().create_future()
        else:
            operation = getattr(self._runner, verb)
            try:
                names = await operation(request.tasks)
            except Refused as exc:
                await self._send(client, protocol.error(str(exc), protocol.REFUSED))
                return
            self._note(f"{verb}: {', '.join(names)} (longrun ctl)")
            await self._send(client, protocol.encode(ok=True, tasks=names))

    def _status(self) -> bytes:
        now = self._runner.clock.now()
        rows = [_row(view, now) for view in self._runner.views()]
        extra = {} if self._runner.lock_status is None else {"lock": self._runner.lock_status}
        return protocol.encode(ok=True, group=self._group, pid=os.getpid(), tasks=rows, **extra)

    async def _watch(self, client: _Client) -> None:
        """Push the whole status after every change, at most ten times a second."""
        changed = asyncio.Event()
        client.streaming = True
        self._runner.listeners.add(changed.set)
        try:
            while True:
                await changed.wait()
                await asyncio.sleep(WATCH_PAUSE)  # let a burst of changes settle
                changed.clear()
                await self._send(client, self._status())
        finally:
            self._runner.listeners.discard(changed.set)

    async def _logs(self, client: _Client, request: protocol.Request) -> None:
        states = self._runner.states()
        try:
            chosen = select(states, request.tasks) if request.tasks else list(states.values())
        except Refused as exc:
            await self._send(client, protocol.error(str(exc), protocol.REFUSED))
            return
        names = [state.name for state in chosen]
        if not request.follow:
            tail = (
                (state.name, line) for state in chosen for line in state.log.tail(request.lines)
            )
            await self._send_lines(client, tail, {"tasks": names}, more=False)
            return
        # Subscribe before taking the tail: no line falls between the two.
        pending: deque[tuple[str, bytes]] = deque()
        arrived = asyncio.Event()
        backlog = [0, 0]  # bytes held (with Python's overhead), lines dropped

        def follower(name: str) -> Callable[[list[bytes]], None]:
            def take(lines: list[bytes]) -> None:
                for line in lines:
                    cost = len(line) + PENDING_OVERHEAD
                    if backlog[0] + cost > FOLLOW_BACKLOG:
                        backlog[1] += 1
                        continue
                    backlog[0] += cost
                    pending.append((name, line))
                arrived.set()

            return take

        takers = [(state.log, follower(state.name)) for state in chosen]
        tail_lines = [(state.name, state.log.tail(request.lines)) for state in chosen]
        for ring, take in takers:
            ring.follow(take)
        client.streaming = True
        try:
            tail = ((name, line) for name, lines in tail_lines for line in lines)
            await self._send_lines(client, tail, {"tasks": names}, more=True)
            del tail_lines
            while True:
                await arrived.wait()
                arrived.clear()

                def drained() -> Iterator[tuple[str, bytes]]:
                    while pending:
                        name, line = pending.popleft()
                        backlog[0] -= len(line) + PENDING_OVERHEAD
                        yield name, line

                dropped, backlog[1] = backlog[1], 0
                extra: dict[str, Any] = {"dropped": dropped} if dropped else {}
                await self._send_lines(client, drained(), extra, more=True)
        finally:
            for ring, take in takers:
                ring.unfollow(take)

    async def _send_lines(
        self,
        client: _Client,
        lines: Iterator[tuple[str, bytes]],
        fields: dict[str, Any],
        *,
        more: bool,
    ) -> None:
        """Lines in responses of at most BATCH_BYTES each, every one written before the next
        is built: memory stays bounded however many lines are asked for.

        ``more``: every response says more may follow (logs -f); otherwise all but the last.
        """
        batch: list[dict[str, str]] = []
        size = 0
        for name, line in lines:
            batch.append({"task": name, "line": _text(line)})
            size += len(line)
            if size >= BATCH_BYTES:
                await self._send(client, protocol.encode(ok=True, **fields, lines=batch, more=True))
                fields, batch, size = {}, [], 0
        await self._send(client, protocol.encode(ok=True, **fields, lines=batch, more=more))

    async def _send(self, client: _Client, data: bytes) -> None:
        client.writer.write(data)
        await asyncio.wait_for(client.writer.drain(), WRITE_PATIENCE)

    def _note(self, message: str) -> None:
        self._sink.emit(Event("ctl", "longrun", Level.INFO, message))


async def _discard_then_close(client: _Client) -> None:
    """Close gracefully on a client still sending: unread bytes at close would reset the
    connection and lose the error just written. Discards (never keeps) for at most 2 s."""
    with contextlib.suppress(OSError, RuntimeError):
        client.writer.write_eof()
    deadline = asyncio.get_running_loop().time() + LINGER
    with contextlib.suppress(Exception):
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if not await asyncio.wait_for(client.reader.read(protocol.MAX_REQUEST), left):
                break


def _row(view: TaskView, now: float) -> dict[str, Any]:
    return {
        "name": view.name,
        "state": view.state,
        "pid": view.pid,
        "run": view.run,
        "attempt": view.attempt,
        "last_exit": view.last_exit,
        "in_state": round(max(0.0, now - view.since), 3),
        "next_in": None if view.next_at is None else round(max(0.0, view.next_at - now), 3),
        "ready": view.ready,
    }


def _text(line: bytes) -> str:
    # Bytes that are not UTF-8 travel as \udcXX escapes; the client turns them back.
    return line.decode("utf-8", "surrogateescape")


def _peer_refusal(writer: asyncio.StreamWriter) -> str | None:
    """Why the peer may not talk to this group (another user), or None."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return "cannot tell who is connecting"
    try:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return "cannot tell who is connecting"
    _pid, uid, _gid = struct.unpack("3i", credentials)
    if uid in (os.getuid(), 0):
        return None
    return f"uid {uid} may not control a group of uid {os.getuid()}"
