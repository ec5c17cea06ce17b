"""The control protocol: newline-delimited JSON, one request and one response per line.

Pure: requests are parsed and responses built here; sockets live in the server
and the client. Every malformed request gets an error response (never an
exception out of ``parse_request`` other than ``ProtocolError``).

Request::

    {"version": 1, "verb": "status"}
    {"version": 1, "verb": "status", "watch": true}
    {"version": 1, "verb": "restart", "tasks": ["web", "worker.2"]}
    {"version": 1, "verb": "logs", "tasks": ["web"], "lines": 100, "follow": true}
    {"version": 1, "verb": "shutdown"}

Response: ``{"version": 1, "ok": true, ...}`` or
``{"version": 1, "ok": false, "code": "refused", "error": "no task named 'x'"}``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

VERSION = 1
MAX_REQUEST = 64 * 1024  # bytes in one request line, newline included
MAX_TASKS = 10_000  # names in one request
MAX_LINES = 100_000  # lines asked of each task's ring
DEFAULT_LINES = 100
VERBS = ("status", "restart", "stop", "start", "logs", "shutdown")
OPERATIONS = ("restart", "stop", "start")  # the verbs that need task names

# Error codes: what a client can act on without parsing the message.
BAD_REQUEST = "bad-request"  # malformed: the client's fault, the connection stays open
TOO_LONG = "too-long"  # a request line over MAX_REQUEST: the connection is closed
REFUSED = "refused"  # well formed, but not now (unknown task, wrong state)
FORBIDDEN = "forbidden"  # another user
BUSY = "busy"  # too many connections: the oldest idle one was closed for a newer one

_FIELDS = {"version", "verb", "tasks", "lines", "follow", "watch"}


class ProtocolError(Exception):
    """A request that cannot be served as written; the message says why, in one line."""

    def __init__(self, message: str, code: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


class Request(NamedTuple):
    verb: str
    tasks: tuple[str, ...] = ()
    lines: int = DEFAULT_LINES
    follow: bool = False
    watch: bool = False


def parse_request(line: bytes) -> Request:
    """One request line (without or with its newline) → a Request, or ProtocolError."""
    if len(line) > MAX_REQUEST:
        raise ProtocolError(f"request longer than {MAX_REQUEST} bytes", TOO_LONG)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("request is not UTF-8") from None
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested"
        if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError):
            reason = "a number too long"
        raise ProtocolError(f"request is not JSON: {reason}") from None
    if not isinstance(message, dict):
        raise ProtocolError("request must be a JSON object")
    unknown = sorted(set(message) - _FIELDS)
    if unknown:
        raise ProtocolError(f"unknown field {_show(unknown[0])}")
    version = message.get("version")
    if version is None:
        raise ProtocolError(f'"version" is missing (this longrun speaks {VERSION})')
    if type(version) is not int or version != VERSION:
        raise ProtocolError(f"unsupported version {_show(version)} (this longrun speaks {VERSION})")
    verb = message.get("verb")
    if verb not in VERBS:
        raise ProtocolError(f'"verb" must be one of {", ".join(VERBS)}, got {_show(verb)}')
    tasks = _tasks(message.get("tasks", []))
    if verb in OPERATIONS and not tasks:
        raise ProtocolError(f"{verb} needs at least one task name")
    if tasks and verb in ("status", "shutdown"):
        raise ProtocolError(f'{verb} takes no "tasks"')
    lines = message.get("lines", DEFAULT_LINES)
    if type(lines) is not int or not 0 <= lines <= MAX_LINES:
        raise ProtocolError(f'"lines" must be an integer from 0 to {MAX_LINES}, got {_show(lines)}')
    follow = _flag(message, "follow", verb == "logs")
    watch = _flag(message, "watch", verb == "status")
    return Request(verb, tasks, lines, follow, watch)


def _tasks(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise ProtocolError('"tasks" must be a list of task names')
    if len(raw) > MAX_TASKS:
        raise ProtocolError(f'"tasks" names more than {MAX_TASKS} tasks')
    return tuple(raw)


def _flag(message: dict[str, Any], field: str, allowed: bool) -> bool:
    value = message.get(field, False)
    if type(value) is not bool:
        raise ProtocolError(f'"{field}" must be true or false, got {_show(value)}')
    if value and not allowed:
        raise ProtocolError(f'"{field}" does not apply to {message["verb"]}')
    return value


def _show(value: Any) -> str:
    """A value from the request in a message: JSON, cut short, never a Python repr."""
    try:
        shown = json.dumps(value, ensure_ascii=True)
    except (ValueError, RecursionError):
        return "a value too large to show"
    return shown if len(shown) <= 60 else shown[:57] + "..."


def encode(**fields: Any) -> bytes:
    """One response line: ASCII JSON (a task's bytes that were not UTF-8 as \\udcXX)."""
    return json.dumps({"version": VERSION, **fields}, separators=(",", ":")).encode() + b"\n"


def error(message: str, code: str = BAD_REQUEST) -> bytes:
    return encode(ok=False, code=code, error=message)


def request(verb: str, **fields: Any) -> bytes:
    """A request line, as the client sends it."""
    return encode(verb=verb, **fields)
