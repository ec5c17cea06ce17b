"""The watcher's script itself, fed as longrun feeds it, killing real process groups."""

from __future__ import annotations

import contextlib
import random
import subprocess
import time

import pytest

from longrun_cli.engine.platform import _WATCHER_SCRIPT

pytestmark = pytest.mark.slow


def _groups(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(["sleep", "60"], process_group=0) for _ in range(count)]


def _watch(lines: list[str]) -> float:
    """Run the script with an empty mark (no /proc sweep) on ``lines``; seconds taken."""
    began = time.monotonic()
    subprocess.run(
        ["/bin/sh", "-c", _WATCHER_SCRIPT, "longrun-watcher", ""],
        input="".join(lines).encode(), timeout=60, check=True,
    )  # fmt: skip
    return time.monotonic() - began


def _killed(procs: list[subprocess.Popen[bytes]]) -> list[bool]:
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
    alive = [proc.poll() is None for proc in procs]
    for proc in procs:
        proc.kill()
        proc.wait()
    return [not up for up in alive]


def test_at_eof_it_kills_what_is_registered_and_not_released():
    """Groups and a foreground pid; a release; an id released then registered again
    (reuse) is killed; junk lines are ignored; nothing else is touched."""
    a, b, c, d = _groups(4)
    _watch([
        f"+ -{a.pid}\n", f"+ -{b.pid}\n", f"+ -{c.pid}\n", f"- -{b.pid}\n",
        f"+ {d.pid}\n", f"- -{a.pid}\n", f"+ -{a.pid}\n", "+ $(reboot)\n", "- \n", "junk\n",
    ])  # fmt: skip
    assert _killed([a, b, c, d]) == [True, False, True, True]


def test_a_settled_run_with_thousands_of_groups_released_in_any_order_is_quick():
    """2,000 groups registered, released in random order (tasks end as they please), and
    more registered and released than the compaction threshold: the one still
    registered is killed, and the lot takes well under a second's order of work (the
    old list search took 113 s on this input)."""
    (kept,) = _groups(1)
    ids = list(range(5_000_000, 5_002_500))  # above any pid_max (2**22): never a group
    released = ids[:]
    random.Random(16).shuffle(released)
    lines = [f"+ -{pid}\n" for pid in ids] + [f"+ -{kept.pid}\n"]
    lines += [f"- -{pid}\n" for pid in released] + [f"+ -{pid}\n- -{pid}\n" for pid in ids]
    taken = _watch(lines)
    assert _killed([kept]) == [True]
    assert taken < 20, taken  # generous: a busy machine; the old script never finished in 60
