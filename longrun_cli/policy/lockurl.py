"""``--lock URL`` (pure): which lock, where, and how long to wait and to lease it.

``file:PATH`` or a bare path: flock on PATH, for one machine. ``etcd://HOST:PORT
[,HOST:PORT...]/KEY``: a lease-based lock in etcd v3, for a fleet (SPEC §11).
"""

from __future__ import annotations

from dataclasses import dataclass

from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.errors import SpecError, quote

DEFAULT_TTL = 10 * SECOND
MIN_TTL = 2 * SECOND  # etcd grants whole seconds; keepalives go out every quarter


@dataclass(frozen=True)
class LockSpec:
    kind: str  # "file" or "etcd"
    path: str = ""  # file: the lock file
    endpoints: tuple[tuple[str, int], ...] = ()  # etcd: tried in order
    key: str = ""  # etcd: the key under which the holder is recorded
    ttl: int = DEFAULT_TTL  # etcd: the lease's time to live (nanoseconds)
    wait: int | None = None  # how long a one-shot task waits for the lock (None: forever)

    @property
    def url(self) -> str:
        if self.kind == "file":
            return f"file:{self.path}"
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.endpoints)
        return f"etcd://{hosts}/{self.key}"

    def describe(self) -> str:
        wait = "forever" if self.wait is None else f"up to {format_duration(self.wait)}"
        if self.kind == "file":
            return f"flock on {self.path}; a one-shot run waits {wait}"
        return (
            f"etcd lease of {format_duration(self.ttl)} on key {self.key!r} at "
            f"{', '.join(f'{h}:{p}' for h, p in self.endpoints)}; a one-shot run waits {wait}"
        )


def parse_lock(text: str, ttl: int | None = None, wait: int | None = None) -> LockSpec:
    """The value of ``--lock`` (with ``--lock-ttl`` and ``--lock-wait``) → a LockSpec."""
    if not text.strip():
        raise SpecError("--lock: empty value (expected file:PATH or etcd://HOST:PORT/KEY)")
    if wait is not None and wait < 0:
        raise SpecError("--lock-wait must not be negative")
    if text.startswith("etcd://"):
        return _etcd(text, ttl if ttl is not None else DEFAULT_TTL, wait)
    if ttl is not None:
        raise SpecError("--lock-ttl applies to an etcd:// lock, not a file lock")
    scheme, colon, rest = text.partition(":")
    if colon and scheme.isalpha() and scheme.lower() != "file" and rest.startswith("//"):
        raise SpecError(
            f"--lock {quote(text)}: unknown scheme {scheme!r} (expected file:PATH or etcd://…)"
        )
    path = rest if colon and scheme.lower() == "file" else text
    if not path or "\0" in path:
        raise SpecError(f"--lock {quote(text)}: expected file:PATH or a path")
    if path.endswith("/"):
        raise SpecError(f"--lock {quote(text)}: names a directory, not a lock file")
    return LockSpec("file", path=path, wait=wait)


def _etcd(text: str, ttl: int, wait: int | None) -> LockSpec:
    rest = text.removeprefix("etcd://")
    hosts, slash, key = rest.partition("/")
    if not slash or not key.strip("/") or not hosts:
        raise SpecError(f"--lock {quote(text)}: expected etcd://HOST:PORT[,HOST:PORT...]/KEY")
    endpoints: list[tuple[str, int]] = []
    for address in hosts.split(","):
        host, colon, port = address.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SpecError(f"--lock {quote(text)}: {address!r} is not HOST:PORT")
        endpoints.append((host, int(port)))
    if ttl < MIN_TTL or ttl % SECOND:
        raise SpecError(
            f"--lock-ttl {format_duration(ttl)}: etcd leases are whole seconds, at least "
            f"{format_duration(MIN_TTL)}"
        )
    if ttl > 3600 * SECOND:
        raise SpecError(f"--lock-ttl {format_duration(ttl)}: at most 1h")
    return LockSpec("etcd", endpoints=tuple(endpoints), key=key, ttl=ttl, wait=wait)
