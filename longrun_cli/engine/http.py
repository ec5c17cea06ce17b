"""One HTTP/1.1 request on asyncio streams: the status code, nothing more.

What the http readiness probe and ``--ping`` need: no redirects followed, no
body read, cancel-safe (the connection is closed however the request ends).
https uses the default SSL context (certificates verified).
"""

from __future__ import annotations

import asyncio
import contextlib

from longrun_cli.policy.group import check_http_url


async def http_status(url: str, body: bytes | None = None) -> int:
    """GET ``url`` (POST with ``body``); the response's status code, or ValueError/OSError."""
    scheme, host, port, path = check_http_url(url)
    ssl = None
    if scheme == "https":
        import ssl as ssl_module

        ssl = ssl_module.create_default_context()
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ssl, server_hostname=host if ssl else None
    )
    try:
        authority = host if ":" not in host else f"[{host}]"
        method = "GET" if body is None else "POST"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {authority}:{port}\r\nUser-Agent: longrun\r\n"
            f"Content-Length: {len(body or b'')}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("ascii", "replace") + (body or b""))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
    return int(parts[1])
