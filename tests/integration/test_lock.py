"""--lock with real processes: a file lock, and a real etcd started by the test.

Every run of the command appends "start PID TIME" and "end PID TIME" to a shared
file; the runs of different holders must never overlap in time.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LONGRUN, longrun, wait_for
from tests.integration.etcd import etcd_server

pytestmark = pytest.mark.slow


def stamping(log: Path, seconds: float = 0.2) -> str:
    """A run that records its start and its end (also when stopped by TERM). A run
    SIGKILLed cannot write its end: so each run first checks that every earlier run
    without an end is gone, and writes "overlap" if one still lives."""
    stamp = f'echo "KIND $$ $(date +%s.%N) $LONGRUN_LOCK_TOKEN" >> {log}'
    end, begin = stamp.replace("KIND", "end"), stamp.replace("KIND", "start")
    unended = (
        f'[ -e {log} ] && awk \'$1=="start"{{s[$2]=1}} $1=="end"{{delete s[$2]}} '
        f"END{{for (p in s) print p}}' {log}"
    )
    # Alive: not gone and not a zombie (a SIGKILLed run's parent may not reap it at once).
    alive = '[ -e /proc/$p ] && [ "$(cut -d" " -f3 /proc/$p/stat 2>/dev/null)" != Z ]'
    check = f'for p in $({unended}); do {alive} && echo "overlap $p 0 $$" >> {log}; done'
    return f"trap '{end}; exit 143' TERM; {check}; {begin}; sleep {seconds} & wait $!; {end}"


def runs(log: Path) -> list[tuple[float, float, int, int]]:
    """(start, end, pid, token) of every run. A run with no end was SIGKILLed: it ends
    before the next run starts, which checked that it was gone ("overlap" otherwise)."""
    started: dict[str, tuple[float, int]] = {}
    found: list[tuple[float, float, int, int]] = []
    for line in log.read_text().splitlines():
        kind, pid, stamp, token = line.split()
        assert kind != "overlap", f"run {pid} was still alive when another started: {line}"
        if kind == "start":
            for other, (begin, tok) in list(started.items()):
                found.append((begin, float(stamp), int(other), tok))  # gone by now
                del started[other]
            started[pid] = (float(stamp), int(token))
        elif pid in started:
            begin, tok = started.pop(pid)
            found.append((begin, float(stamp), int(pid), tok))
    found += [(begin, float("inf"), int(pid), tok) for pid, (begin, tok) in started.items()]
    return sorted(found)


def assert_no_overlap(log: Path) -> list[tuple[float, float, int, int]]:
    found = runs(log)
    for (_b1, end1, pid1, _t1), (begin2, _e2, pid2, _t2) in itertools.pairwise(found):
        assert end1 <= begin2, f"run {pid1} overlaps run {pid2}: {found}"
    return found


def start(lock: str, log: Path, *extra: str, interval: str = "100ms") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LONGRUN, "exec", f"--lock={lock}", f"--interval={interval}", *extra,
         "--name=job", "--", "sh", "-c", stamping(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with_signal(proc, signal.SIGCONT)
            proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def with_signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signum)


def count(log: Path) -> int:
    return log.read_text().count("start") if log.exists() else 0


# --- the file lock ---------------------------------------------------------------------


def test_file_lock_two_longruns_never_overlap_and_tokens_grow(tmp_path: Path):
    lock, log = str(tmp_path / "lock"), tmp_path / "runs"
    procs = [start(lock, log), start(lock, log)]
    try:
        wait_for(lambda: count(log) >= 5, timeout=20)
        # The holder keeps the lock file open; a standby opens it only for a moment
        # to try, so it is not seen with it open twice, 60 ms apart.
        seen = [p for p in procs if _holds(p)]
        time.sleep(0.06)
        holder = next(p for p in seen if _holds(p))
        holder.kill()  # SIGKILL: the command keeps the lock until it is gone too
        holder.wait()
        wait_for(lambda: count(log) >= 10, timeout=20)
    finally:
        stop_all(procs)
    found = assert_no_overlap(log)
    tokens = [token for *_rest, token in found]
    assert tokens == sorted(tokens)
    assert tokens[-1] > tokens[0]  # the standby took over: a new acquisition


def _holds(proc: subprocess.Popen[bytes]) -> bool:
    fds = Path(f"/proc/{proc.pid}/fd")
    try:
        return any(os.readlink(fd).endswith("/lock") for fd in fds.iterdir())
    except OSError:
        return False


def test_file_lock_wait_runs_out_with_75_and_one_line(tmp_path: Path):
    lock = str(tmp_path / "lock")
    holder = subprocess.Popen([*LONGRUN, "exec", f"--lock={lock}", "--", "sleep", "30"],
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: _holds(holder))
        result = longrun("exec", f"--lock=file:{lock}", "--lock-wait=300ms", "--", "true")
    finally:
        holder.terminate()
        holder.wait()
    assert result.returncode == 75
    (line,) = result.stderr.decode().splitlines()
    assert "still held elsewhere after 300ms" in line


def test_a_removed_lock_file_is_a_lost_lock(tmp_path: Path):
    lock = tmp_path / "lock"
    proc = subprocess.Popen(
        [*LONGRUN, "exec", f"--lock={lock}", "--", "sleep", "30"], stderr=subprocess.PIPE
    )
    wait_for(lambda: _holds(proc))
    lock.unlink()
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 75
    assert b"was removed or replaced" in err


def test_an_unusable_lock_path_is_125(tmp_path: Path):
    result = longrun("exec", f"--lock={tmp_path}/no/such/dir/lock", "--", "true")
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1
    assert b"No such file or directory" in result.stderr


# --- etcd ------------------------------------------------------------------------------


def etcd_lock(server: object, key: str = "jobs/poll") -> str:
    return f"etcd://{server.endpoint}/{key}"  # type: ignore[attr-defined]


def test_etcd_three_longruns_one_runs_and_sigkill_hands_over_within_ttl(tmp_path: Path):
    log = tmp_path / "runs"
    with etcd_server() as server:
        lock = etcd_lock(server)
        procs = [start(lock, log, "--lock-ttl=2s") for _ in range(3)]
        try:
            wait_for(lambda: count(log) >= 5, timeout=30)
            holder = _holder(procs, log)
            killed_at = time.time()
            holder.kill()
            holder.wait()
            wait_for(lambda: any(b > killed_at for b, *_ in runs(log)), timeout=30)
            handover = min(b for b, *_ in runs(log) if b > killed_at) - killed_at
            wait_for(lambda: count(log) >= 12, timeout=30)
        finally:
            stop_all(procs)
    found = assert_no_overlap(log)
    assert handover <= 2 + 1, handover  # TTL + 1 s
    tokens = [token for *_rest, token in found]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) >= 2


def _holder(procs: list[subprocess.Popen[bytes]], log: Path) -> subprocess.Popen[bytes]:
    """The longrun whose command wrote the last run."""
    last = runs(log)[-1][2]
    return next(proc for proc in procs if _parent_of(last) == proc.pid)


def _parent_of(pid: int) -> int:
    out = subprocess.run(["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True,
                         check=False).stdout.strip()  # fmt: skip
    return int(out) if out else -1


def test_etcd_a_frozen_holder_does_not_carry_on_without_the_lock(tmp_path: Path):
    """SIGSTOP of the holder for 3 x TTL, then SIGCONT: no overlap; it stands by or runs
    again only after taking the lock again (a higher token)."""
    log = tmp_path / "runs"
    with etcd_server() as server:
        lock = etcd_lock(server)
        procs = [start(lock, log, "--lock-ttl=2s") for _ in range(2)]
        try:
            wait_for(lambda: count(log) >= 3, timeout=30)
            holder = _holder(procs, log)
            with_signal(holder, signal.SIGSTOP)
            time.sleep(6)
            with_signal(holder, signal.SIGCONT)
            time.sleep(3)
        finally:
            stop_all(procs)
        err = holder.stderr.read().decode() if holder.stderr else ""
    found = assert_no_overlap(log)
    assert "lock lost" in err
    tokens = [token for *_rest, token in found]
    assert tokens == sorted(tokens)


def test_etcd_killed_while_held_stops_the_command_and_resumes(tmp_path: Path):
    log = tmp_path / "runs"
    with etcd_server() as server:
        lock = etcd_lock(server)
        proc = subprocess.Popen(
            [*LONGRUN, "exec", f"--lock={lock}", "--lock-ttl=2s", "--name=job", "--",
             "sh", "-c", stamping(log, 300)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(lambda: count(log) >= 1, timeout=30)
            server.kill()
            killed_at = time.time()
            wait_for(lambda: "end" in log.read_text(), timeout=10)
            stopped_after = float(log.read_text().split("end")[1].split()[1]) - killed_at
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert stopped_after < 2, stopped_after  # within the TTL
    assert proc.returncode == 75
    assert b"lock lost" in err


def test_etcd_an_interval_holder_resumes_when_etcd_is_back(tmp_path: Path):
    log = tmp_path / "runs"
    with etcd_server() as server:
        lock = etcd_lock(server)
        proc = start(lock, log, "--lock-ttl=2s")
        try:
            wait_for(lambda: count(log) >= 2, timeout=30)
            server.kill()
            time.sleep(3)
            before = count(log)
            time.sleep(1)
            assert count(log) == before  # nothing runs without the lock
            server.start()
            wait_for(lambda: count(log) >= before + 2, timeout=30)
        finally:
            stop_all([proc])
        err = proc.stderr.read().decode() if proc.stderr else ""
    assert_no_overlap(log)
    assert err.count("holder: lock") >= 2


# --- a whole group ---------------------------------------------------------------------


def test_a_group_is_a_singleton_and_a_standby_takes_over(tmp_path: Path):
    lock, log = str(tmp_path / "lock"), tmp_path / "runs"

    def group() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*LONGRUN, "group", "--no-control", f"--lock={lock}",
             "-t", f"poll=while :; do {stamping(log, 0.1)}; done"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    active = group()
    wait_for(lambda: count(log) >= 3, timeout=20)
    passive = group()
    try:
        time.sleep(1)
        active.terminate()  # lets go: the passive one takes over
        active.wait(timeout=20)
        took_over = count(log)
        wait_for(lambda: count(log) >= took_over + 3, timeout=20)
    finally:
        stop_all([active, passive])
    found = assert_no_overlap(log)
    assert found[-1][3] > found[0][3]
    assert b"standby: lock" in (passive.stderr.read() if passive.stderr else b"")


def test_an_etcd_group_that_loses_its_lock_stops_every_task_with_75(tmp_path: Path):
    log = tmp_path / "runs"
    with etcd_server() as server:
        proc = subprocess.Popen(
            [*LONGRUN, "group", "--no-control", f"--lock={etcd_lock(server, 'g')}",
             "--lock-ttl=2s", "-t", f"a={stamping(log, 300)}", "-t", "b=sleep 300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(lambda: count(log) >= 1, timeout=30)
            server.kill()
            killed_at = time.time()
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    (only,) = runs(log)
    assert only[1] - killed_at < 2  # stopped within the TTL
    assert proc.returncode == 75
    assert b"lock lost" in err


def test_ctl_status_says_holder_or_standby(tmp_path: Path, rundir):
    """Two groups (different names) on one file lock: ctl status tells the holder, with its
    token, from the standby."""
    lock = str(tmp_path / "lock")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(rundir)}

    def group(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*LONGRUN, "group", f"--name={name}", f"--lock={lock}", "-t", "a=sleep 300"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def status(name: str) -> str:
        result = longrun("ctl", f"--name={name}", "status", env=env)
        return result.stdout.decode()

    active = group("one")
    try:
        wait_for(lambda: status("one").startswith("lock: holder"), timeout=20)
        passive = group("two")
        try:
            wait_for(lambda: status("two").startswith("lock: standby"), timeout=20)
            assert "token 1" in status("one")
            assert "a " in status("one")  # the holder's task runs
        finally:
            stop_all([passive])
    finally:
        stop_all([active])
