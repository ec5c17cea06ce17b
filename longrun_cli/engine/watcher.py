"""The parent-death watcher: what stops longrun's processes when longrun is SIGKILLed.

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
process, not its descendants. Nothing here signals a process from Python.
"""

from __future__ import annotations

import os
import subprocess

MARK_VARIABLE = "LONGRUN_MARK"

_WATCHER_SCRIPT = """
trap '' HUP INT QUIT
mark=$1
live=' '
settled=
while read -r op target; do
  case $op in
    +) live="$live$target " ;;
    -) case $live in *" $target "*) live="${live%% $target *} ${live#* $target }" ;; esac ;;
    =) settled=1 ;;
  esac
done
for target in $live; do kill -9 $target 2>/dev/null; done
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


def new_mark(inherited: str | None) -> tuple[str, str]:
    """This longrun's own mark and the value its commands carry.

    A longrun inside another keeps the outer marks too, so the outer watcher
    still finds the inner longrun's commands.
    """
    own = os.urandom(8).hex()
    return own, f"{inherited} {own}" if inherited else own


class Watcher:
    """longrun's side of the watcher: register, release, and say when all is clean."""

    def __init__(self, popen: subprocess.Popen[bytes], write_fd: int) -> None:
        self._popen = popen
        self._write_fd = write_fd
        self._released: list[str] = []

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
        return cls(popen, write_fd)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def watch(self, target: str) -> None:
        # Releases ride along: every write wakes the watcher, which then competes
        # with the attempt just started (~0.15 ms a write, measured).
        self._send(self._take_releases() + f"+ {target}\n")

    def release_later(self, target: str) -> None:
        """Forget ``target`` with the next write; the caller flushes within a second."""
        self._released.append(target)

    def flush(self) -> None:
        if self._released:
            self._send(self._take_releases())

    def _take_releases(self) -> str:
        lines = "".join(f"- {old}\n" for old in self._released)
        self._released.clear()
        return lines

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
