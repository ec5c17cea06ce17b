"""Where a group's control socket lives, and taking that place safely (SPEC §8).

``--control PATH`` (or ``[runner] control``), else
``$XDG_RUNTIME_DIR/longrun/NAME.sock``, else ``/tmp/longrun-UID/NAME.sock``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING, NamedTuple

from longrun_cli.policy.errors import SpecError, quote

if TYPE_CHECKING:
    import socket

# connect() to a socket whose server is alive but busy answers at once: a stale
# socket refuses at once too, so this bounds only a hung (SIGSTOPped) group.
PROBE_TIMEOUT = 1.0


class ControlError(SpecError):
    """The control socket cannot be served (exit 125, one line naming the path)."""


def check_name(name: str) -> str:
    """A group name becomes a file name: one path component, printable."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or not name.isprintable():
        raise ControlError(f"group name {quote(name)} cannot name a socket file; use --name")
    return name


def default_path(name: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    base = os.path.join(runtime, "longrun") if runtime else f"/tmp/longrun-{os.getuid()}"
    return os.path.join(base, check_name(name) + ".sock")


class Listening(NamedTuple):
    """A bound control socket and the file it made (removed only if still that file)."""

    sock: socket.socket
    path: str
    inode: int


def bind(path: str, name: str, *, own_directory: bool) -> Listening:
    """A listening socket at ``path``, 0600; a stale socket there is replaced.

    A live socket there (another group of the same name) is an error naming it.
    ``own_directory``: the directory is longrun's (the default path), kept 0700.
    """
    import socket  # here: longrun ctl needs the paths, not the socket module's enums

    directory = os.path.dirname(path) or "."
    _private_directory(directory, own_directory)
    if os.path.lexists(path):
        _replace_stale(path, name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(1024)  # a burst of clients waits in the queue, not refused
        inode = os.lstat(path).st_ino
    except OSError as exc:
        server.close()
        raise ControlError(
            f"cannot serve the control socket {quote(path)}: {_reason(exc)}"
        ) from None
    server.setblocking(False)
    return Listening(server, path, inode)


def remove(listening: Listening) -> None:
    """Remove the socket file, unless another group has replaced it since."""
    with contextlib.suppress(OSError):
        if os.lstat(listening.path).st_ino == listening.inode:
            os.unlink(listening.path)


def is_live(path: str) -> bool | None:
    """True: a server answers at ``path``; False: stale or refused; None: nothing there."""
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _private_directory(directory: str, own: bool) -> None:
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
        if own and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)
    except OSError as exc:
        raise ControlError(
            f"cannot create the control directory {quote(directory)}: {_reason(exc)}"
        ) from None
    # Another user's directory (made first in /tmp) could swap our socket for theirs:
    # root included, who would otherwise take orders from whoever made it.
    if info.st_uid != os.getuid():
        raise ControlError(f"control directory {quote(directory)} belongs to another user")


def _replace_stale(path: str, name: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"control socket path {quote(path)} exists and is not a socket")
    if is_live(path):
        raise ControlError(f"a group named {quote(name)} is already running ({path}); use --name")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EINVAL and exc.strerror is None:
        return str(exc)
    return exc.strerror or str(exc)
