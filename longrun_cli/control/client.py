"""The ``longrun ctl`` side of the control socket: blocking and light (no asyncio).

``longrun ctl status`` is run by scripts and by shell completion; it must cost
little more than starting Python with click. Hence ``_socket``, the C module under
``socket``: the Python wrapper builds its enums and imports selectors on import,
a tenth of what the whole query costs beyond click.
"""

from __future__ import annotations

import _socket
import json
from collections.abc import Iterator
from typing import Any

from longrun_cli.control import protocol


class NoGroup(Exception):
    """Nothing serves at the socket (exit 69): the message names the path."""


class ControlClient:
    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            self._sock.close()
            raise NoGroup(f"no running group at {path}") from None
        except PermissionError:
            self._sock.close()
            raise NoGroup(f"no access to the group at {path} (permission denied)") from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, verb: str, **fields: Any) -> None:
        try:
            self._sock.sendall(protocol.request(verb, **fields))
        except (BrokenPipeError, ConnectionResetError):
            raise NoGroup(f"the group at {self.path} went away") from None

    def responses(self) -> Iterator[dict[str, Any]]:
        """Each response line until the group closes the connection."""
        pending: list[bytes] = []  # pieces of a line not yet complete (linear, however long)
        while True:
            try:
                chunk = self._sock.recv(65536)
            except ConnectionResetError:
                return
            if not chunk:
                return
            start = 0
            while (newline := chunk.find(b"\n", start)) >= 0:
                pending.append(chunk[start:newline])
                yield json.loads(b"".join(pending))
                pending = []
                start = newline + 1
            pending.append(chunk[start:])

    def call(self, verb: str, **fields: Any) -> dict[str, Any]:
        """One request, its one response."""
        self.send(verb, **fields)
        for response in self.responses():
            return response
        raise NoGroup(f"the group at {self.path} ended before it answered")


def line_bytes(text: str) -> bytes:
    """A log line as the task wrote it (bytes that were not UTF-8 came as \\udcXX)."""
    return text.encode("utf-8", "surrogateescape")
