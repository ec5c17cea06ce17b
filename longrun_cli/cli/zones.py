"""The machine's own time zone, for cron schedules that name none (``TZ``, else /etc/localtime).

A real zone, not today's UTC offset: a daily 02:30 job must know about DST.
"""

from __future__ import annotations

import os
from datetime import UTC, tzinfo

LOCALTIME = "/etc/localtime"


def local_zone(environ: dict[str, str] | os._Environ[str] = os.environ) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # as the C library does, an unknown TZ falls back to UTC
        return UTC
    try:
        with open(LOCALTIME, "rb") as source:
            return ZoneInfo.from_file(source, key="localtime")
    except (OSError, ValueError):
        return UTC
