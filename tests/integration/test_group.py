"""longrun group with real processes: cancel-all, hooks, signals, dependencies, output."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    LONGRUN,
    alive,
    longrun,
    read_pids,
    start,
    term_twice,
    wait_for,
)

pytestmark = pytest.mark.slow


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "longrun.toml"
    path.write_text(text)
    return path


def test_first_failure_stops_the_others_and_sets_the_status(tmp_path, reap_strays):
    """One task exits 4: the sleepers are stopped and longrun exits 4 promptly."""
    pids = tmp_path / "pids"
    began = time.monotonic()
    result = longrun(
        "group",
        "-t", f"a=echo $$ >> {pids}; exec sleep 60",
        "-t", f"b=echo $$ >> {pids}; exec sleep 60",
        "-t", "c=sleep 0.5; exit 4",
    )  # fmt: skip
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 4
    assert time.monotonic() - began < 15
    assert len(read_pids(pids)) == 2
    assert not any(alive(pid) for pid in read_pids(pids))
    assert b"event=stopping-group" in result.stderr


def test_quiet_cancel_all_reports_only_the_failure():
    """With -q, the tasks stopped because another failed are not errors: one task's lines only."""
    result = longrun(
        "group", "-q", "-t", "a=sleep 60", "-t", "b=sleep 60", "-t", "c=sleep 0.3; exit 4"
    )
    assert result.returncode == 4
    lines = result.stderr.decode().splitlines()
    assert lines
    assert all("task=c " in line for line in lines), lines


def test_hooks_run_in_reverse_order_only_after_every_task_stopped(tmp_path, reap_strays):
    """Hooks run LIFO, and when each runs no task process is alive any more."""
    pids, log = tmp_path / "pids", tmp_path / "log"
    hook = f"for p in $(cat {pids}); do kill -0 $p 2>/dev/null && echo alive >> {log}; done; echo $LONGRUN_TASK >> {log}"
    config = toml(
        tmp_path,
        f"""
[tasks.first]
command = "echo $$ >> {pids}; trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done"
shutdown = "{hook}"
[tasks.second]
command = "echo $$ >> {pids}; exec sleep 60"
shutdown = "{hook}"
[tasks.third]
command = "sleep 0.5; exit 3"
shutdown = "{hook}"
""",
    )
    result = longrun("group", str(config))
    reap_strays.extend(read_pids(pids))
    assert result.returncode == 3, result.stderr
    assert log.read_text().split() == ["third", "second", "first"]


def test_sigterm_stops_every_task_runs_hooks_and_is_reraised(tmp_path):
    """SIGTERM to longrun group: tasks stop, hooks run, longrun dies by TERM."""
    log = tmp_path / "log"
    config = toml(
        tmp_path,
        f"""
[tasks.a]
command = "touch {tmp_path}/a; exec sleep 60"
shutdown = "echo hook-a >> {log}"
[tasks.b]
command = "touch {tmp_path}/b; exec sleep 60"
shutdown = "echo hook-b >> {log}"
""",
    )
    proc = start("group", str(config))
    wait_for(lambda: (tmp_path / "a").exists() and (tmp_path / "b").exists())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert log.read_text().split() == ["hook-b", "hook-a"]


def test_dependent_starts_after_its_dependency_succeeded(tmp_path):
    """web sees the file migrate wrote: it started only after migrate succeeded."""
    config = toml(
        tmp_path,
        f"""
[tasks.migrate]
command = "sleep 0.3; touch {tmp_path}/migrated"
[tasks.web]
command = "test -e {tmp_path}/migrated && echo saw-migration"
depends_on = {{ migrate = "succeeded" }}
""",
    )
    result = longrun("group", str(config))
    assert result.returncode == 0, result.stderr
    assert b"web     | saw-migration\n" in result.stdout


def test_stdout_readiness_gates_the_dependent(tmp_path):
    """poll starts only after web printed 'Listening'."""
    config = toml(
        tmp_path,
        """
[tasks.web]
command = "sleep 0.3; echo Listening on 8000; exec sleep 60"
ready = { stdout = "Listening" }
[tasks.poll]
command = "echo polled; exit 5"
depends_on = { web = "ready" }
""",
    )
    result = longrun("group", str(config))
    out = result.stdout.decode()
    assert result.returncode == 5
    assert out.index("Listening on 8000") < out.index("polled")


def test_probe_command_readiness_gates_the_dependent(tmp_path):
    """app starts only once db's probe command succeeds."""
    config = toml(
        tmp_path,
        f"""
[tasks.db]
command = "sleep 0.4; touch {tmp_path}/db-up; exec sleep 60"
ready = {{ command = "test -e {tmp_path}/db-up", interval = "100ms", timeout = "10s" }}
[tasks.app]
command = "test -e {tmp_path}/db-up && echo db-was-ready; exit 6"
depends_on = {{ db = "ready" }}
""",
    )
    result = longrun("group", str(config))
    assert result.returncode == 6
    assert b"db-was-ready" in result.stdout


def test_lines_never_interleave_under_concurrent_writers():
    """Two tasks printing 2,000 lines of 5,000 bytes each: every output line is whole."""
    line_a, line_b = "a" * 5000, "b" * 5000
    result = longrun(
        "group",
        "-t", f"aa=for i in $(seq 2000); do echo {line_a}; done",
        "-t", f"bb=for i in $(seq 2000); do echo {line_b}; done",
    )  # fmt: skip
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines.count(f"aa | {line_a}") == 2000
    assert lines.count(f"bb | {line_b}") == 2000
    assert len(lines) == 4000


def test_huge_line_is_kept_whole_and_partial_last_line_flushed():
    """A 1 MiB line arrives whole; a last line without newline is flushed at exit."""
    result = longrun(
        "group",
        "-t", "big=head -c 1048576 /dev/zero | tr '\\0' x; echo; printf tail",
        "-t", "other=for i in $(seq 200); do echo other-line; done",
    )  # fmt: skip
    lines = result.stdout.decode().splitlines()
    assert "big   | " + "x" * 1048576 in lines
    assert "big   | tail" in lines
    assert lines.count("other | other-line") == 200


def test_stderr_goes_to_stderr_with_the_prefix():
    """A task's stderr lines reach longrun's stderr, prefixed."""
    result = longrun("group", "-t", "w=echo oops >&2")
    assert b"w | oops\n" in result.stderr
    assert result.stdout == b""


def test_no_prefix_passes_lines_as_they_are():
    """--no-prefix drops the task names."""
    result = longrun("group", "--no-prefix", "-t", "a=echo hello")
    assert result.stdout == b"hello\n"


def test_procfile_source(tmp_path):
    """--procfile runs honcho-style lines."""
    procfile = tmp_path / "Procfile"
    procfile.write_text("hello: echo hi from $LONGRUN_TASK\n")
    result = longrun("group", "--procfile", str(procfile))
    assert result.returncode == 0
    assert result.stdout == b"hello | hi from hello\n"


def test_bad_config_exits_125_with_one_line(tmp_path):
    """An unknown key ends with 125 and one line naming file, line and key."""
    config = toml(tmp_path, '[tasks.web]\ncommand = "x"\nretri = []\n')
    result = longrun("group", str(config))
    assert result.returncode == 125
    err = result.stderr.decode()
    assert err.count("\n") == 1
    assert f"{config}:3: tasks.web.retri: unknown key (did you mean 'retry'?)" in err


def test_two_sources_are_a_usage_error(tmp_path):
    """FILE and -t together are refused."""
    result = longrun("group", "-t", "a=true", str(toml(tmp_path, "")))
    assert result.returncode == 125


def test_group_dry_run_shows_start_and_shutdown_order(tmp_path):
    """--dry-run prints DAG levels, policies and the shutdown order."""
    config = toml(
        tmp_path,
        '[tasks.migrate]\ncommand = "m"\n[tasks.web]\ncommand = "w"\ndepends_on = ["migrate"]\n',
    )
    result = longrun("group", "--dry-run", str(config))
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "  0. migrate\n  1. web\n" in out
    assert "shutdown order (hooks, within 30s in all): web, migrate" in out


def test_a_one_task_group_does_not_speak_of_other_tasks():
    """A single failing task: "failed permanently", not "stopping the other tasks"."""
    result = longrun("group", "-t", "a=false")
    assert result.returncode == 1
    assert b'msg="failed permanently"' in result.stderr
    assert b"other tasks" not in result.stderr


def test_a_late_reader_gets_every_line_whole():
    """4 x 5 MB of 70-byte lines into a pipe whose reader starts 1 s late: longrun stops
    reading while the pipe is full, and a line it holds half of then is not cut in two
    (it used to be, once PARTIAL_WAIT passed): exactly the lines written, each prefixed."""
    import sys as _sys

    line = "0" * 69
    tasks = [arg for name in "abcd" for arg in ("-t", f"{name}=yes {line} | head -c 5000000")]
    writer = subprocess.Popen(
        [*LONGRUN, "group", "--no-control", *tasks],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    reader = subprocess.run(
        [_sys.executable, "-c", "import sys, time; time.sleep(1); sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=writer.stdout, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert writer.stdout is not None
    writer.stdout.close()
    assert writer.wait(timeout=60) == 0
    lines = reader.stdout.split(b"\n")[:-1]
    assert len(lines) == 4 * (5_000_000 // 70) + 4  # each task's last, partial line too
    assert all(text[:4] in (b"a | ", b"b | ", b"c | ", b"d | ") for text in lines)
    whole = [text for text in lines if len(text) == 4 + 69]
    assert len(whole) == 4 * (5_000_000 // 70)


@pytest.mark.parametrize("left_behind", [False, True])
def test_a_second_sigterm_kills_at_once(tmp_path, left_behind):
    """Tasks ignoring TERM, --kill-after 60s: a second TERM kills them at once, whether
    the task's own process ignores TERM (each of 3 tasks waits for the second signal)
    or its shell died on TERM and left what it started, ignoring TERM, in its group."""
    ready, pids, log = tmp_path / "ready", tmp_path / "pids", tmp_path / "stderr"
    inner = f"trap '' TERM; echo $$ >> {pids}; touch {ready}; exec sleep 100"
    command = f'sh -c "{inner}" & wait' if left_behind else inner
    tasks = [arg for name in "abc" for arg in ("-t", f"{name}={command}")]
    args = ["group", "--no-control", "--kill-after", "60s", *tasks]
    status, seconds = term_twice(args, ready, log)
    left = read_pids(pids)
    assert seconds < 5, seconds
    assert status == -signal.SIGTERM
    assert left
    assert not any(alive(pid) for pid in left)
    assert b"killing the commands now" in log.read_bytes()


@pytest.mark.parametrize("inherited", ["longrun's own", "a symlink to the task's"])
def test_a_task_in_a_working_directory_sees_pwd_as_sh_sets_it(tmp_path, inherited):
    """A command string of plain words runs without sh, a list without any shell: PWD
    still names the task's directory, as for a command sh -c runs (dash fixes a stale
    PWD and keeps one that names the same directory by another path)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "sub")
    config = toml(
        tmp_path,
        '[tasks.plain]\ncommand = "env"\ncwd = "sub"\n'
        '[tasks.argv]\ncommand = ["env"]\ncwd = "sub"\n'
        '[tasks.shell]\ncommand = "env | grep ^PWD="\ncwd = "sub"\n',
    )
    pwd = str(tmp_path) if inherited == "longrun's own" else str(tmp_path / "link")
    env = {**os.environ, "PWD": pwd}
    result = longrun("group", "--no-control", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    seen = {
        line.split(b"|", 1)[0].strip(): line.split(b"PWD=", 1)[1]
        for line in result.stdout.splitlines()
        if b"| PWD=" in line
    }
    expected = str(tmp_path / "sub") if inherited == "longrun's own" else pwd
    assert seen == dict.fromkeys([b"plain", b"argv", b"shell"], expected.encode())
