"""Linux-only mechanisms behind one door, each with a portable fallback, and the watcher.

- the child subreaper (prctl): daemons that escape with ``setsid`` are adopted by
  longrun instead of init; elsewhere they are found by their marker only;
- /proc: longrun's children (to find adopted orphans) and every process that
  carries longrun's marker. Only trusted when /proc belongs to longrun's own pid
  namespace (``unshare -fp`` without ``--mount-proc`` shows the host's pids,
  whose numbers mean other processes here);
- the descriptor limit: raised for a large group, given back to the commands.

Nothing here signals a process from Python: that stays in ``engine.process``.

The parent-death watcher (``Watcher``) stops longrun's processes when longrun is
SIGKILLed.

One ``sh`` per longrun, in a session of its own, holds the read end of a pipe only
longrun writes to. On end of file (longrun gone, however) it kills every process
group still registered, then, unless longrun said it had cleaned up itself, every
process whose environment carries longrun's marker (``LONGRUN_MARK``): a daemon
that left its group with ``setsid``, a child forked a moment before longrun could
register it, a helper double-forked away. The scan repeats until two rounds
0.1 s apart find nothing, so a process caught between fork and exec (still
showing longrun's own environment) is found once it has exec'd.

This replaces PR_SET_PDEATHSIG, which needs code in the child between fork and
exec (preexec_fn disables vfork and costs ~1.7 ms per spawn) and covers one
process, not its descendants.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

_PR_SET_CHILD_SUBREAPER = 36
_F_SETPIPE_SZ = 1031  # Linux fcntl: a 1 MiB pipe means 16x fewer reads than the default
_proc_is_ours: bool | None = None

# The portable path: what longrun does where Linux's mechanisms are missing (macOS,
# the BSDs): no subreaper, no /proc, default pipe sizes; process groups and the
# watcher still stop everything longrun started. LONGRUN_PLATFORM=portable takes
# it on Linux too, which is how the tests prove it.
PORTABLE = not sys.platform.startswith("linux") or os.environ.get("LONGRUN_PLATFORM") == "portable"


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a daemon that left its group with setsid)."""
    if PORTABLE:
        return False
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
    try:
        import ctypes

        return bool(ctypes.CDLL(None, use_errno=True).prctl(*args) == 0)
    except (ImportError, OSError, AttributeError):
        return False


def proc_is_ours() -> bool:
    """True when /proc shows this pid namespace (its pid numbers are ours to signal)."""
    global _proc_is_ours  # noqa: PLW0603 - a fact of the process, looked up once
    if PORTABLE:
        return False
    if _proc_is_ours is None:
        try:
            _proc_is_ours = os.readlink("/proc/self") == str(os.getpid())
        except OSError:
            _proc_is_ours = False  # no /proc at all (macOS)
    return _proc_is_ours


def enlarge_pipe(fd: int, size: int) -> None:
    """Ask for a bigger pipe buffer (Linux); elsewhere, or when refused, keep the default."""
    if PORTABLE:
        return
    import fcntl

    # Past the per-user pipe-page limit it is refused: the default size still works.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)


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


def raise_fd_limit(needed: int) -> tuple[int, int] | None:
    """Raise the soft descriptor limit towards the hard one when ``needed`` exceeds it.

    Returns the limits longrun was started with, which its commands get back (a
    ``select()`` program breaks above 1024, so systemd does the same), or None when
    nothing changed.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return None
    return soft, hard


def thread_count() -> int | None:
    """The threads of this process, C ones included (Linux), or None when unknown."""
    if PORTABLE:
        return None
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


@contextlib.contextmanager
def fd_limit(limits: tuple[int, int]) -> Iterator[None]:
    """The descriptor limit ``limits`` in force for the block (a posix_spawn: the child
    keeps it), then the raised one again.

    The caller makes sure that no other thread can open a descriptor meanwhile: with
    the soft limit below the descriptors already open, any new one is refused.
    """
    import resource

    which = resource.RLIMIT_NOFILE
    raised = resource.getrlimit(which)
    resource.setrlimit(which, limits)
    try:
        yield
    finally:
        resource.setrlimit(which, raised)


def restore_fd_limit_before_exec(limits: tuple[int, int]) -> Callable[[], None]:
    """What a child runs between fork and exec to get ``limits`` back (Popen's way)."""
    import resource

    setrlimit, which = resource.setrlimit, resource.RLIMIT_NOFILE

    def restore() -> None:  # runs between fork and exec: no imports, no allocation to speak of
        setrlimit(which, limits)

    return restore


MARK_VARIABLE = "LONGRUN_MARK"

_WATCHER_SCRIPT = """
trap '' HUP INT QUIT
mark=$1
# A target (-PGID, or PID) is live while its variable w_gPGID / w_pPID is 1: each line
# is a few builtins, not a search of a list (2,000 groups released out of order made
# that quadratic). $all lists every target added, compacted when mostly dead.
all=' '
added=0
live=0
settled=
name() {
  case $1 in -*) n=g${1#-} ;; *) n=p$1 ;; esac
}
compact() {
  kept=' '
  for t in $all; do
    name "$t"
    eval "s=\\${w_$n-}"
    if [ "$s" = 1 ]; then kept="$kept$t "; eval "w_$n=2"; fi
  done
  for t in $kept; do name "$t"; eval "w_$n=1"; done
  all=$kept
  added=$live
}
while read -r op target; do
  [ "$op" = = ] && { settled=1; continue; }
  case $target in ''|-|*[!0-9-]*|?*-*) continue ;; esac
  name "$target"
  eval "s=\\${w_$n-}"
  case $op in
    +) if [ -z "$s" ]; then eval "w_$n=1"; live=$((live + 1)); all="$all$target "
         added=$((added + 1)); [ $added -gt $((2 * live + 1000)) ] && compact; fi ;;
    -) if [ -n "$s" ]; then unset "w_$n"; live=$((live - 1)); fi ;;
  esac
done
for target in $all; do
  name "$target"
  eval "s=\\${w_$n-}"
  [ -n "$s" ] && kill -9 "$target" 2>/dev/null
done
[ -z "$settled" ] && [ -n "$mark" ] || exit 0
quiet=0
rounds=0
while [ $quiet -lt 2 ] && [ $rounds -lt 100 ]; do
  rounds=$((rounds + 1))
  found=
  for file in $(grep -lszE "^LONGRUN_MARK=(.* )?$mark( .*)?\\$" /proc/[0-9]*/environ); do
    pid=${file#/proc/}
    kill -9 "${pid%/environ}" 2>/dev/null && found=1
  done
  if [ -n "$found" ]; then quiet=0; else quiet=$((quiet + 1)); sleep 0.1; fi
done
"""


# New groups a watcher may be told of at once, at most (see Watcher.watch).
_WATCH_BATCH = 64


def new_mark(inherited: str | None) -> tuple[str, str]:
    """This longrun's own mark and the value its commands carry.

    A longrun inside another keeps the outer marks too, so the outer watcher
    still finds the inner longrun's commands.
    """
    own = os.urandom(8).hex()
    return own, f"{inherited} {own}" if inherited else own


class Watcher:
    """longrun's side of the watcher: register, release, and say when all is clean."""

    def __init__(self, popen: subprocess.Popen[bytes], write_fd: int, *, swept: bool) -> None:
        self._popen = popen
        self._write_fd = write_fd
        # Lines not yet written, in the order things happened: a group id released
        # and then reused must end up listed.
        self._pending: list[str] = []
        self._watched = 0  # new groups among them
        # With a mark to sweep by, a new group may wait for the end of the loop's turn:
        # were longrun killed first, the sweep finds its command by the mark.
        self._swept = swept

    @classmethod
    def start(cls, mark: str) -> Watcher | None:
        """``mark`` empty: kill registered groups only (/proc is not this namespace's)."""
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                ["/bin/sh", "-c", _WATCHER_SCRIPT, "longrun-watcher", mark],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # inherits longrun's environment: not marked
            )
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        os.close(read_fd)
        return cls(popen, write_fd, swept=bool(mark))

    @property
    def pid(self) -> int:
        return self._popen.pid

    def watch(self, target: str) -> bool:
        """Register ``target``; True when it waits for ``flush`` (the caller's next turn).

        Every write wakes the watcher, which then competes with the attempt just
        started (~0.15 ms a write, measured): a group starting 2,000 commands in one
        turn writes a few times, not 2,000. At most _WATCH_BATCH groups wait, and
        only when the mark sweep would find them; releases ride along.
        """
        self._pending.append(f"+ {target}\n")
        self._watched += 1
        if not self._swept or self._watched >= _WATCH_BATCH:
            self.flush()
            return False
        return True

    def release_later(self, target: str) -> None:
        """Forget ``target`` with the next write; the caller flushes within a second."""
        self._pending.append(f"- {target}\n")

    def flush(self) -> None:
        if self._pending:
            lines = "".join(self._pending)
            self._pending.clear()
            self._watched = 0
            self._send(lines)

    def reaped(self, pid: int) -> None:
        if pid == self._popen.pid:
            self._popen.returncode = 0  # Popen must not wait for it again

    def close(self, *, settled: bool) -> None:
        """Let the watcher go; ``settled``: longrun itself stopped every process it knew."""
        self.flush()
        if settled:
            self._send("= settled\n")
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def _send(self, line: str) -> None:
        if self._write_fd < 0:
            return
        try:
            os.write(self._write_fd, line.encode())
        except OSError:
            os.close(self._write_fd)
            self._write_fd = -1
