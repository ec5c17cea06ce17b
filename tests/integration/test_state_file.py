"""--state-file with real longruns: killed (TERM, KILL) during a backoff, the next one
continues it; corrupt, foreign and outdated files are one warning; shared files stay whole."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LONGRUN, longrun, wait_for

pytestmark = pytest.mark.slow

RULE = "--retry-exit-code=3:6:400ms,60s,2"


def failing(tmp_path: Path, state: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A command that always fails with 3, logging each attempt's number."""
    log = tmp_path / "attempts"
    return subprocess.Popen(
        [*LONGRUN, "exec", f"--state-file={state}", RULE, *extra, "--name=job", "--",
         "sh", "-c", f'echo "$LONGRUN_ATTEMPT $(date +%s.%N)" >> {log}; exit 3'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def saved(state: Path) -> dict[str, object]:
    return json.loads(state.read_text())["tasks"]["job"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_restarted_longrun_continues_the_backoff(tmp_path: Path, signum: int):
    """Killed while waiting 800ms before retry 3, the next longrun waits out the rest and
    goes on with retry 3 in 1.6s, instead of starting over at retry 1 in 400ms."""
    state = tmp_path / "state.json"
    first = failing(tmp_path, state)
    wait_for(lambda: state.exists() and saved(state)["spent"] == [2], timeout=20)
    first.send_signal(signum)
    first.wait(timeout=20)
    entry = saved(state)
    assert entry["spent"] == [2]
    killed_at = time.time()
    assert isinstance(entry["retry_at"], float)
    assert entry["retry_at"] > entry["last_failure"]
    second = failing(tmp_path, state, "--deadline=4s")
    _out, err = second.communicate(timeout=30)
    text = err.decode()
    assert "resumed from" in text
    assert "2 failure(s) in a row" in text
    assert 'msg="retry in 1.6s"' in text
    assert "retry=3/6" in text
    assert "retry=1/6" not in text
    attempts = (tmp_path / "attempts").read_text().split("\n")
    numbers = [int(line.split()[0]) for line in attempts if line]
    assert numbers[:3] == [1, 2, 3]  # the third is the second longrun's first
    third_at = float(attempts[2].split()[1])
    # The rest of the 800ms backoff was waited out, not skipped.
    assert third_at >= float(entry["retry_at"]) - 0.05
    assert third_at >= killed_at - 1


def test_success_clears_the_state(tmp_path: Path):
    state = tmp_path / "state.json"
    flag = tmp_path / "flag"
    command = f"[ -e {flag} ] && exit 0; touch {flag}; exit 3"
    result = longrun("exec", f"--state-file={state}", RULE, "--name=job", "--", "sh", "-c", command)
    assert result.returncode == 0
    assert json.loads(state.read_text())["tasks"] == {}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"format": "longrun-state", "version": 1, "tasks": {"job": {"spen', "corrupt"),
        (b"\x00\xff garbage", "not a longrun state file"),
        (b'{"format": "longrun-state", "version": 9, "tasks": {}}', "version 9"),
    ],
)
def test_an_unusable_file_is_one_warning_and_a_fresh_start(tmp_path: Path, content, why):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    result = longrun(
        "exec", f"--state-file={state}", "--retry-exit-code=3:1:10ms", "--name=job", "--",
        "sh", "-c", "exit 3",
    )  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 3
    assert err.count(why) == 1, err
    assert "Traceback" not in err
    assert "retry=1/1" in err  # a fresh budget
    if why == "corrupt":  # ours: rewritten whole
        assert saved(state)["spent"] == [2]
    else:  # not ours (or newer): never overwritten
        assert state.read_bytes() == content


def test_changed_rules_make_the_file_outdated(tmp_path: Path):
    state = tmp_path / "state.json"
    longrun("exec", f"--state-file={state}", "--retry-exit-code=3:1:10ms", "--name=job", "--",
            "sh", "-c", "exit 3")  # fmt: skip
    assert saved(state)["spent"] == [2]
    result = longrun(
        "exec", f"--state-file={state}", "--retry-exit-code=3:2:10ms", "--name=job", "--",
        "sh", "-c", "exit 3",
    )  # fmt: skip
    err = result.stderr.decode()
    assert "ignored: the retry rules changed" in err
    assert "retry=1/2" in err


def test_a_device_is_never_replaced(tmp_path: Path):
    """--state-file /dev/full: a warning, and /dev/full stays a device (root could rename)."""
    result = longrun(
        "exec", "--state-file=/dev/full", "--retry-exit-code=3:1:10ms", "--", "sh", "-c", "exit 3"
    )
    assert result.returncode == 3
    assert b"not a regular file" in result.stderr
    assert Path("/dev/full").is_char_device()
    assert not Path("/dev/full.lock").exists()


def test_a_held_lock_delays_then_skips_a_save_without_failing(tmp_path: Path):
    state = tmp_path / "state.json"
    with open(f"{state}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        result = longrun("exec", f"--state-file={state}", "--name=job", "--", "sh", "-c", "exit 0")
        took = time.monotonic() - started
    assert result.returncode == 0
    assert b"held by another process" in result.stderr
    assert took < 10


def test_two_longruns_on_one_file_keep_it_whole_and_keep_both_entries(tmp_path: Path):
    """Both save on every attempt for 2 s; a reader never sees a broken file, and in the
    end each task's entry is there (the lock serialises read-modify-write)."""
    state = tmp_path / "state.json"
    procs = []
    for n in (1, 2):
        argv = [*LONGRUN, "exec", f"--state-file={state}", "--retry-exit-code=3:inf:1ms,1ms",
                f"--name=job{n}", "--deadline=2s", "--", "sh", "-c", "exit 3"]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    reads = 0
    while any(proc.poll() is None for proc in procs):
        if state.exists():
            json.loads(state.read_text())  # raises on a torn or half-written file
            reads += 1
        time.sleep(0.005)
    assert reads > 20
    tasks = json.loads(state.read_text())["tasks"]
    assert set(tasks) == {"job1", "job2"}
    assert all(entry["spent"][0] > 10 for entry in tasks.values())
    assert not list(tmp_path.glob("*.tmp"))


def test_sigkill_at_random_moments_never_leaves_a_torn_file(tmp_path: Path):
    """A save on every attempt (1 ms backoff), longrun SIGKILLed at 6 random moments: the
    file is always whole JSON, and the next longrun resumes from it or starts afresh."""
    import random

    state = tmp_path / "state.json"
    for _ in range(6):
        proc = subprocess.Popen(
            [*LONGRUN, "exec", f"--state-file={state}", "--retry-exit-code=3:inf:1ms,1ms",
             "--name=job", "--", "sh", "-c", "exit 3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(random.uniform(0.3, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if state.exists():
            entry = saved(state)  # raises on a torn or half-written file
            assert entry["spent"][0] >= 1
    # A kill mid-save may leave the temporary file: one at most, whatever the kills.
    assert [path.name for path in tmp_path.glob("*.tmp")] in ([], ["state.json.tmp"])
    result = longrun(
        "exec", f"--state-file={state}", "--retry-exit-code=3:inf:1ms,1ms", "--name=job",
        "--deadline=300ms", "--", "sh", "-c", "exit 3",
    )  # fmt: skip
    assert b"resumed from" in result.stderr
