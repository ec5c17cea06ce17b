"""Nothing left behind, nothing hangs: the process and stream layer under real faults.

Leftover processes are counted by a marker the test puts in longrun's environment
(every descendant inherits it), never by name.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.reliability import marked_env, pid_reuse_group, settle
from tests.integration.conftest import LONGRUN, read_pids, wait_for
from tests.integration.conftest import start as start_longrun
from tests.integration.test_tty import run_in_pty

pytestmark = pytest.mark.slow

_started: list[subprocess.Popen[bytes]] = []


def start(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    proc = start_longrun(*args, **kwargs)
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _kill_what_a_failed_test_left() -> Iterator[None]:
    """A longrun a failing test left running is killed (its watcher takes the rest)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def none_left(mark: str, timeout: float = 5.0) -> list[int]:
    """Wait for every marked process to go; what was still there after ``timeout`` (killed)."""
    return settle(mark, timeout)[0]


NESTED_DAEMON = "setsid sh -c '(setsid sleep 300 &); sleep 300' & sleep 300"


@pytest.mark.parametrize(
    "args",
    [
        ["exec", "--", "sh", "-c", NESTED_DAEMON],
        ["exec", "--foreground", "--", "sh", "-c", "sleep 300 & sleep 300"],
        ["group", *[arg for i in range(100) for arg in ("-t", f"t{i}=sleep 300")]],
        # A liveness probe command that hangs: it goes with longrun too.
        [
            "exec",
            "--health=cmd:setsid sleep 300 & sleep 300",
            "--health-interval=50ms",
            "--health-timeout=60s",
            "--",
            "sleep",
            "300",
        ],
    ],
    ids=["setsid-daemons", "foreground", "group-start", "health-probe"],
)
def test_sigkill_of_longrun_at_random_moments_leaves_nothing(args):
    """SIGKILL of longrun at 5 random moments of each case: no marked process survives."""
    for _ in range(5):
        env, mark = marked_env()
        proc = start(*args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.1, 0.5))
        proc.kill()
        proc.wait()
        assert none_left(mark) == [], args


def test_a_daemons_own_setsid_helper_does_not_hold_the_callers_pipe(tmp_path: Path):
    """out=$(longrun exec ...) returns: the daemon and its escaped helper are stopped.

    The helper is the daemon's child until the daemon is stopped, so only a
    search repeated after that finds it.
    """
    env, mark = marked_env()
    helper = tmp_path / "helper"
    daemon = f"setsid sh -c 'echo $$ > {helper}; exec sleep 300' & sleep 300"
    result = subprocess.run(
        [*LONGRUN, "exec", "--kill-after", "1s", "--", "sh", "-c",
         f"setsid sh -c \"{daemon}\" & while [ ! -s {helper} ]; do sleep 0.05; done; echo started"],
        capture_output=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"started\n")
    assert none_left(mark, timeout=1.0) == []


def test_a_later_escapee_in_a_group_is_stopped_too():
    """A helper that escapes after the first sweep began is found and stopped as well."""
    env, mark = marked_env()
    script = "setsid sh -c 'trap \"setsid sleep 300 & exit\" TERM; sleep 300 & wait' & exit 0"
    result = subprocess.run(
        [*LONGRUN, "group", "--kill-after", "1s", "-t", f"a={script}"],
        capture_output=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert none_left(mark, timeout=1.0) == []


def test_escaped_daemons_get_the_stop_signal(tmp_path: Path):
    """--stop-signal USR1 reaches a daemon that left the group, not TERM."""
    got = tmp_path / "got"
    daemon = f"trap 'echo USR1 > {got}; exit 0' USR1; trap 'echo TERM > {got}; exit 0' TERM; sleep 300 & wait"
    result = subprocess.run(
        [*LONGRUN, "exec", "--stop-signal", "USR1", "--kill-after", "5s", "--",
         "sh", "-c", f"setsid sh -c \"{daemon}\" & sleep 0.3"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    wait_for(got.exists)
    assert got.read_text().strip() == "USR1"


def _in_pid_namespace() -> bool:
    return shutil.which("unshare") is not None and os.geteuid() == 0


@pytest.mark.skipif(not _in_pid_namespace(), reason="needs root and util-linux unshare")
def test_pid_reuse_while_a_released_child_is_held_does_not_hang(tmp_path: Path):
    """In a private pid namespace a new attempt gets the pid of a child whose output is held.

    Releasing the old child must not drop the new one: the group still ends on TERM.
    """
    held, pids, turn = tmp_path / "held.pid", tmp_path / "b.pids", tmp_path / "turn"
    config = tmp_path / "longrun.toml"
    config.write_text(pid_reuse_group(held, pids, turn))
    proc = subprocess.Popen(
        ["unshare", "--fork", "--pid", "--mount-proc", *LONGRUN, "group", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(held.exists)
        target = int(held.read_text())
        wait_for(lambda: target in read_pids(pids), timeout=15)
        time.sleep(4)  # a's grace is over, its release has happened, b's 5 s attempt ends
        count = len(read_pids(pids))
        wait_for(lambda: len(read_pids(pids)) > count + 2)  # and b goes on ticking
        inner = _children(proc.pid)[0]
        os.kill(inner, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        for pid in _children(proc.pid) if proc.poll() is None else []:
            os.kill(pid, signal.SIGKILL)  # the namespace's init: the kernel ends the rest
        proc.kill()
    assert b"Traceback" not in err


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.skipif(not _in_pid_namespace(), reason="needs root and util-linux unshare")
def test_a_pid_namespace_with_the_hosts_proc_does_not_wait_for_strangers():
    """unshare -fp without --mount-proc: /proc is not believed, exec -- true ends at once."""
    began = time.monotonic()
    result = subprocess.run(
        ["unshare", "--fork", "--pid", *LONGRUN, "exec", "--", "true"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 5  # the old code waited the whole --kill-after (10 s)
    assert b"left their process group" not in result.stderr


def test_a_progress_bar_does_not_hold_up_another_tasks_lines(tmp_path: Path):
    """70 KB without a newline, then a 4 s pause: the other task's lines still flow."""
    bar_done = tmp_path / "bar-done"
    bar = f"head -c 70000 /dev/zero | tr '\\0' '#'; sleep 4; touch {bar_done}; echo"
    lines = "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.1; done"
    proc = start("group", "-t", f"bar={bar}", "-t", f"lines={lines}", stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen_before_bar = 0
    for line in proc.stdout:
        if b"tick-" in line and not bar_done.exists():
            seen_before_bar += 1
    proc.wait(timeout=30)
    assert seen_before_bar == 10


def test_group_output_to_a_full_disk_changes_no_status():
    """stdout on /dev/full: tasks are not killed by SIGPIPE, the group exits 0, the loss is said."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*LONGRUN, "group", "-t", "a=sh -c 'echo x; sleep 0.5; echo y'",
             "-t", "b=sh -c 'sleep 1; echo z'"],
            stdout=full, stderr=subprocess.PIPE, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"event=output-lost" in result.stderr
    assert b"stdout: No space left on device" in result.stderr


def test_a_matched_stderr_to_a_full_disk_is_still_matched(tmp_path: Path):
    """exec's stderr on /dev/full: the command is not killed and its stderr still matches."""
    once = tmp_path / "once"
    script = f"echo boom >&2; [ -e {once} ] && exit 0; touch {once}; exit 3"
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*LONGRUN, "exec", "--retry-stderr", "boom:1:10ms", "--", "sh", "-c", script],
            stderr=full, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 0


def test_closed_stderr_gives_the_commands_status():
    """longrun ... 2>&-: the log lines have nowhere to go and the status is still the command's."""
    result = subprocess.run(
        [*LONGRUN, "exec", "--retry-stderr", "x", "--", "sh", "-c", "echo err >&2; exit 3"],
        stdout=subprocess.DEVNULL, timeout=30, check=False,
        preexec_fn=lambda: os.close(2),
    )  # fmt: skip
    assert result.returncode == 3


@pytest.mark.parametrize("other_thread", [False, True])
def test_a_500_task_group_under_the_usual_descriptor_limit(tmp_path: Path, other_thread: bool):
    """ulimit -n 1024 and 510 tasks: all run, and each command still gets the 1024 limit,
    whether spawned under that limit (posix_spawn, longrun alone) or by Popen (another
    thread could open a descriptor meanwhile: here the span exporter's)."""
    limits = tmp_path / "limits"
    tasks = [arg for i in range(510) for arg in ("-t", f"t{i}=sleep 2")]
    tasks += ["-t", f"probe=sh -c 'ulimit -n > {limits}; echo done'"]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    if other_thread:
        env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    result = subprocess.run(
        ["sh", "-c", 'ulimit -Sn 1024 && exec "$@"', "sh", *LONGRUN, "group", *tasks],
        capture_output=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert limits.read_text().strip() == "1024"
    assert b"probe | done" in result.stdout  # its output came through the pipe


def test_sigkill_while_spawning_under_the_old_descriptor_limit_leaves_nothing():
    """ulimit -Sn 1024, 600 tasks: longrun spawns with its limit lowered and the pipe ends
    passed through reserved descriptors; SIGKILL at 3 random moments of that start
    leaves no marked process."""
    tasks = [arg for i in range(600) for arg in ("-t", f"t{i}=sleep 300")]
    for _ in range(3):
        env, mark = marked_env()
        proc = subprocess.Popen(
            ["sh", "-c", 'ulimit -Sn 1024 && exec "$@"', "sh", *LONGRUN, "group", *tasks],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _started.append(proc)
        time.sleep(random.uniform(0.2, 0.8))
        proc.kill()
        proc.wait()
        assert none_left(mark) == []


def _system_python_matches() -> bool:
    system = Path("/usr/bin/python3")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not system.exists():
        return False
    version = subprocess.run(
        [str(system), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return version == str(sys.version_info[:2]) and _readable_by_others(Path(sys.prefix))


def _readable_by_others(path: Path) -> bool:
    """nobody can reach ``path`` (the checkout and its .venv): every directory above is o+x.

    A checkout in a private directory (``mktemp -d`` makes 0700) cannot be imported
    by another user at all; the test would fail for that alone.
    """
    import stat

    return all(os.stat(directory).st_mode & stat.S_IXOTH for directory in [path, *path.parents])


@pytest.mark.skipif(
    not _system_python_matches(),
    reason="needs root, setpriv, a system python of the test's version (RLIMIT_NPROC spares "
    "root) and a checkout other users can read",
)
def test_a_group_under_a_small_process_limit_fails_in_one_clear_line(tmp_path: Path):
    """ulimit -u 40 and 60 tasks, as an unprivileged user: 126 naming the limit, no traceback."""
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    root = Path(__file__).resolve().parents[2]
    env, mark = marked_env()
    env["PYTHONPATH"] = f"{site}:{root}"
    tasks = " ".join(f"-t t{i}='sleep 30'" for i in range(60))
    result = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "bash", "-c",
         f"ulimit -u 40 && cd / && exec /usr/bin/python3 -m longrun_cli group --no-control {tasks}"],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 126, result.stderr[-2000:]
    assert b"Traceback" not in result.stderr
    assert b"process limit reached (ulimit -u)" in result.stderr
    assert none_left(mark) == []


def _blocked_and_ignored() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mask(status: str, field: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith(field))
    return int(line.split()[1], 16)


def test_blocked_and_ignored_signals_are_handled_and_passed_on(tmp_path: Path):
    """Started with CHLD and TERM blocked and INT ignored: longrun works, the command gets them back."""
    # Not through sh: dash clears the mask it was started with.
    result = subprocess.run(
        [*LONGRUN, "exec", "--", "grep", "^Sig", "/proc/self/status"],
        capture_output=True, timeout=30, check=False, preexec_fn=_blocked_and_ignored,
    )  # fmt: skip
    assert result.returncode == 0
    text = result.stdout.decode()
    blocked = (1 << (signal.SIGCHLD - 1)) | (1 << (signal.SIGTERM - 1))
    assert _mask(text, "SigBlk:") == blocked
    assert _mask(text, "SigIgn:") & (1 << (signal.SIGINT - 1))


@pytest.mark.parametrize(
    ("signum", "runs_for", "status"),
    [
        # TERM blocked by the parent is unblocked in longrun: TERM stops it gracefully.
        (signal.SIGTERM, 300, -signal.SIGTERM),
        # A background job's ignored SIGINT does not stop longrun.
        (signal.SIGINT, 1, 0),
    ],
    ids=["blocked-term-still-stops", "ignored-int-stays-ignored"],
)
def test_signals_blocked_or_ignored_by_the_parent(tmp_path: Path, signum, runs_for, status):
    """Started with CHLD and TERM blocked and INT ignored: TERM stops longrun, INT does not."""
    started = tmp_path / "started"
    proc = start(
        "exec", "--", "sh", "-c", f"touch {started}; sleep {runs_for}",
        preexec_fn=_blocked_and_ignored,
    )  # fmt: skip
    wait_for(started.exists)
    proc.send_signal(signum)
    proc.communicate(timeout=20)
    assert proc.returncode == status


def test_alrm_stops_gracefully_with_the_hook(tmp_path: Path):
    """SIGALRM (default: die at once) stops the command, runs the hook, then ends by ALRM."""
    started, hooked = tmp_path / "started", tmp_path / "hooked"
    proc = start(
        "exec", "--shutdown", f"touch {hooked}", "--", "sh", "-c", f"touch {started}; sleep 300"
    )
    wait_for(started.exists)
    proc.send_signal(signal.SIGALRM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGALRM
    assert hooked.exists()
    assert b"received ALRM" in err


def test_usr1_reaches_the_main_process_only(tmp_path: Path):
    """USR1 goes to the command, not to its helper that has no handler for it."""
    helper, got = tmp_path / "helper", tmp_path / "got"
    script = f"trap 'echo usr1 > {got}' USR1; sleep 300 & echo $! > {helper}; wait; wait"
    proc = start("exec", "--", "sh", "-c", script)
    wait_for(helper.exists)
    proc.send_signal(signal.SIGUSR1)
    wait_for(got.exists)
    sleeper = int(helper.read_text())
    time.sleep(0.2)
    assert Path(f"/proc/{sleeper}").exists()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def test_a_command_stopped_by_sigttin_is_reported():
    """cat reading the terminal without --foreground: a warning says what to do."""
    output, status = run_in_pty(["exec", "--timeout", "2s", "--", "cat"])
    assert b"tty-stopped" in output or b"wants the terminal" in output, output
    assert b"--foreground" in output
    assert status == 124


def test_sigkill_during_a_readiness_probe_leaves_nothing(tmp_path: Path):
    """A probe command running when longrun is killed goes too."""
    env, mark = marked_env()
    probing = tmp_path / "probing"
    config = tmp_path / "longrun.toml"
    config.write_text(
        f"""
[tasks.web]
command = "sleep 300"
ready = {{ command = "touch {probing}; sleep 300", interval = "100ms", timeout = "60s" }}
"""
    )
    proc = start("group", str(config), env=env)
    wait_for(probing.exists)
    proc.kill()
    proc.wait()
    assert none_left(mark) == []


def test_every_line_reaches_a_slow_reader_whole(tmp_path: Path):
    """A group writing 20,000 lines into a pipe read slowly: every line arrives, prefixed."""
    script = "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"
    proc = start("group", "-t", f"a={script}", stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    time.sleep(1)  # longrun's pipe fills while nobody reads
    lines = proc.stdout.read().splitlines()
    proc.wait(timeout=30)
    assert lines == [f"a | line-{i}".encode() for i in range(20000)]


@pytest.mark.parametrize("limit", [6, 8, 10, 12, 16])
def test_a_tiny_descriptor_limit_gives_one_line_never_a_traceback(limit):
    """ulimit -n N: longrun runs, or says in one line which limit stopped it (125/126)."""
    result = subprocess.run(
        ["sh", "-c", f'ulimit -n {limit} && exec "$@"', "sh", *LONGRUN,
         "exec", "--retry-stderr", "x", "--", "true"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert b"Traceback" not in result.stderr
    assert result.returncode in (0, 125, 126), result.stderr
    if result.returncode:
        assert b"too many open files" in result.stderr.lower(), result.stderr


@pytest.mark.skipif(not _in_pid_namespace(), reason="needs root and util-linux unshare")
def test_sigpwr_stops_longrun_as_pid_1_gracefully(tmp_path: Path):
    """As a container's PID 1, SIGPWR (LXC/Incus's stop) stops the command and runs the hook."""
    started, hooked = tmp_path / "started", tmp_path / "hooked"
    proc = subprocess.Popen(
        ["unshare", "--fork", "--pid", "--mount-proc", *LONGRUN, "exec",
         "--shutdown", f"touch {hooked}", "--", "sh", "-c", f"touch {started}; sleep 300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(started.exists)
        os.kill(_children(proc.pid)[0], signal.SIGPWR)
        _, err = proc.communicate(timeout=20)
    finally:
        for pid in _children(proc.pid) if proc.poll() is None else []:
            os.kill(pid, signal.SIGKILL)
        proc.kill()
    assert hooked.exists()
    assert b"received PWR" in err
    assert proc.returncode == 128 + signal.SIGPWR  # PID 1 cannot die by its own signal


def test_an_interval_task_after_longrun_was_suspended_runs_once(tmp_path: Path):
    """SIGSTOP of longrun for 2.3 intervals, then SIGCONT: one catch-up run, not two at once.

    The catch-up run comes at once, the next on the grid (~0.7 s later here), as
    Go's Ticker does; before, a second run followed the catch-up within a few ms.
    """
    stamps = tmp_path / "stamps"
    proc = start(
        "exec",
        "--interval",
        "1s",
        "--",
        "sh",
        "-c",
        f"date +%s.%N >> {stamps}",
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(stamps.read_text().split()) >= 2 if stamps.exists() else False)
    proc.send_signal(signal.SIGSTOP)  # just after the 1 s tick
    time.sleep(2.3)  # resumed ~0.7 s before the 4 s tick: far from both neighbours
    proc.send_signal(signal.SIGCONT)
    time.sleep(1.6)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    times = [float(t) for t in stamps.read_text().split()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) > 0.1, gaps


def test_a_reader_that_never_reads_does_not_hang_a_stop():
    """longrun group ... | (a reader that neither reads nor closes): TERM still ends longrun."""
    proc = start("group", "--kill-after", "1s", "-t", "a=yes", stderr=subprocess.DEVNULL)
    time.sleep(1.5)  # the pipe to the reader, and then the writer's queue, are full
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)  # it hung for good before
    assert proc.returncode == -signal.SIGTERM


def test_sigterm_at_random_moments_of_a_large_start_stops_everything_promptly(tmp_path: Path):
    """TERM at 5 random moments while a group starts: 150 sleepers being spawned, a task
    waiting for a dependency that never succeeds, one retrying every 10 ms (each wait
    for a stop is a future of its own, made before or after the request). longrun ends
    by the re-raised TERM within seconds, and no marked process is left."""
    sleepers = "".join(f'[tasks.s{i}]\ncommand = "sleep 300"\n' for i in range(150))
    config = tmp_path / "longrun.toml"
    config.write_text(
        sleepers
        + '[tasks.slow]\ncommand = "sleep 300"\n'
        + '[tasks.waiter]\ncommand = "true"\ndepends_on = { slow = "succeeded" }\n'
        + '[tasks.flaky]\ncommand = "exit 3"\nretry_exit_code = ["3:100000:10ms"]\n'
        + '[tasks.ticker]\ncommand = "true"\ninterval = "20ms"\n'
    )
    for _ in range(5):
        env, mark = marked_env()
        proc = start(
            "group", "--no-control", str(config),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(random.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
        assert none_left(mark) == []
