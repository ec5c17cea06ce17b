"""Signal names and numbers as users write them (``KILL``, ``SIGKILL``, ``9``)."""

from __future__ import annotations

import signal

from longrun_cli.policy.errors import SpecError, quote

_MAX_SIGNAL = signal.SIGRTMAX if hasattr(signal, "SIGRTMAX") else 64


def parse_signal(text: str) -> int:
    """Signal number for a name with or without ``SIG`` (any case) or a number."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        number = int(value) if len(value.lstrip("0")) <= 3 else 0
        if 1 <= number <= _MAX_SIGNAL:
            return number
        raise SpecError(f"invalid signal {quote(text)}: number must be 1..{int(_MAX_SIGNAL)}")
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    member = getattr(signal.Signals, "__members__", {}).get(name)
    if member is None or name in ("SIG_DFL", "SIG_IGN"):
        raise SpecError(f"invalid signal {quote(text)}: unknown signal name")
    return int(member)


def parse_signal_list(text: str) -> list[int]:
    """``KILL,SEGV`` → ``[9, 11]``, duplicates dropped, order kept."""
    parts = text.split(",")
    if not text.strip() or any(not part.strip() for part in parts):
        raise SpecError(f"invalid signal list {quote(text)}: empty entry")
    numbers: list[int] = []
    for part in parts:
        number = parse_signal(part)
        if number not in numbers:
            numbers.append(number)
    return numbers


def signal_name(number: int) -> str:
    """``9`` → ``KILL``; unknown numbers (real-time signals) stay numeric."""
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def stop_signals() -> tuple[int, ...]:
    """Signals that ask longrun to stop gracefully."""
    return (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


# Signals whose default action would kill longrun outright (no stop, no hook, spans
# lost); like coreutils' timeout, longrun stops gracefully on them instead. SIGPWR
# is how LXC and Incus stop a container's PID 1.
_FATAL_NAMES = ("ALRM", "VTALRM", "PROF", "XCPU", "XFSZ", "PWR", "STKFLT", "SYS", "TRAP", "ABRT")


def fatal_signals() -> tuple[int, ...]:
    """Other signals that would end longrun at once: handled as a stop request."""
    return tuple(
        int(getattr(signal, "SIG" + name)) for name in _FATAL_NAMES if hasattr(signal, "SIG" + name)
    )


# Signals a caller may ignore to say "not for this job" (a shell's background job
# ignores INT and QUIT, nohup ignores HUP): they stay ignored, for longrun and the
# command alike.
KEEP_IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def forwarded_signals() -> tuple[int, ...]:
    """Signals that longrun passes on to the running commands."""
    return (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
