"""Reading the files a group is defined by (TOML, Procfile, env files), with one error type.

A FIFO (``<(...)``) or a device is read without ever blocking for good.
"""

from __future__ import annotations

import os
import stat

from longrun_cli.policy.errors import SpecError

StrPath = str | os.PathLike[str]


class ConfigError(SpecError):
    """A group definition is invalid; the message names file, line and key."""


# How long a FIFO or device given as the group file may take to deliver its text.
READ_PATIENCE = 10.0


def read_text(path: StrPath) -> str:
    """The file's text; a FIFO (``<(...)``) is read without ever blocking for good."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory, not a file")
        data = _read_all(fd, path, wait=not stat.S_ISREG(mode))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_all(fd: int, path: StrPath, *, wait: bool) -> bytes:
    """Read to the end; ``wait``: a FIFO or device, polled first, within READ_PATIENCE.

    Linux reports a FIFO readable only once a writer has written or come and
    gone, so polling first tells "no writer yet" from the end of the text.
    """
    import select
    import time

    chunks: list[bytes] = []
    deadline = time.monotonic() + READ_PATIENCE
    while True:
        if wait:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not readable:
                raise ConfigError(
                    f"{path}: nothing to read within {READ_PATIENCE:g}s (a FIFO nobody writes?)"
                )
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
