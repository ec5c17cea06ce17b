"""Linux-only mechanisms behind one door, each with a portable fallback.

- the child subreaper (prctl): daemons that escape with ``setsid`` are adopted by
  longrun instead of init; elsewhere they are found by their marker only;
- /proc: longrun's children (to find adopted orphans) and every process that
  carries longrun's marker. Only trusted when /proc belongs to longrun's own pid
  namespace (``unshare -fp`` without ``--mount-proc`` shows the host's pids,
  whose numbers mean other processes here);
- the descriptor limit: raised for a large group, given back to the commands.

Nothing here signals a process: that stays in ``engine.process``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_PR_SET_CHILD_SUBREAPER = 36
_proc_is_ours: bool | None = None


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a daemon that left its group with setsid)."""
    args = (_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        # ctypes' Python layer costs ~1.5 ms of every start; its C core can call
        # prctl alone. The public API stays the fallback if that core changes.
        import _ctypes

        # None opens the running program itself, as dlopen(3) allows; typeshed disagrees.
        program = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]
        prctl = _ctypes.dlsym(program, "prctl")
        return bool(_ctypes.call_function(prctl, args) == 0)
    except (ImportError, AttributeError, OSError):
        pass
    import ctypes

    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(*args) == 0)
    except (OSError, AttributeError):
        return False


def proc_is_ours() -> bool:
    """True when /proc shows this pid namespace (its pid numbers are ours to signal)."""
    global _proc_is_ours  # noqa: PLW0603 - a fact of the process, looked up once
    if _proc_is_ours is None:
        try:
            _proc_is_ours = os.readlink("/proc/self") == str(os.getpid())
        except OSError:
            _proc_is_ours = False  # no /proc at all (macOS)
    return _proc_is_ours


def children_of_this_process() -> list[int]:
    """Direct children by /proc (zombies included); [] where /proc cannot be trusted."""
    pids: list[int] = []
    if not proc_is_ours():
        return pids
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in threads:
        try:
            with open(f"/proc/self/task/{tid}/children") as children:
                pids += [int(pid) for pid in children.read().split()]
        except OSError:
            continue
    return pids


def raise_fd_limit(needed: int) -> Callable[[], None] | None:
    """Raise the soft descriptor limit towards the hard one when ``needed`` exceeds it.

    Returns what a child runs before exec to get back the limit longrun was
    started with (a ``select()`` program breaks above 1024, so systemd does the
    same), or None when nothing changed.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return None
    setrlimit, which = resource.setrlimit, resource.RLIMIT_NOFILE

    def restore() -> None:  # runs between fork and exec: no imports, no allocation to speak of
        setrlimit(which, (soft, hard))

    return restore
