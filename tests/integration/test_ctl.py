"""longrun ctl against real groups over real sockets: every verb, state and exit status."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import LONGRUN, alive, longrun, start, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Group:
    proc: subprocess.Popen[bytes]
    socket: Path
    env: dict[str, str]
    out: Path
    err: Path

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LONGRUN, "ctl", "--control", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def status(self) -> dict[str, dict[str, object]]:
        result = self.ctl("status", "--json")
        assert result.returncode == 0, result.stderr
        return {task["name"]: task for task in json.loads(result.stdout)["tasks"]}

    def wait_state(self, task: str, *states: str, timeout: float = 15) -> dict[str, object]:
        found: dict[str, object] = {}

        def reached() -> bool:
            found.update(self.status()[task])
            return found["state"] in states

        wait_for(reached, timeout)
        return found


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def env_for(rundir: Path) -> dict[str, str]:
    return {**os.environ, "XDG_RUNTIME_DIR": str(rundir)}


@contextlib.contextmanager
def running(
    rundir: Path, *args: str, name: str = "shop", control: Path | None = None
) -> Iterator[Group]:
    env = env_for(rundir)
    out, err = rundir / f"{name}.out", rundir / f"{name}.err"
    sock = control or rundir / "longrun" / f"{name}.sock"
    where = ["--control", str(control)] if control else []
    with out.open("wb") as out_file, err.open("wb") as err_file:
        proc = start(
            "group", "--name", name, *where, *args, env=env, stdout=out_file, stderr=err_file
        )
    group = Group(proc, sock, env, out, err)
    try:
        wait_for(lambda: answers(sock) or proc.poll() is not None)
        yield group
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


WEB = "web=echo web $$ up; exec sleep 300"
WORKER = "worker=echo worker $$; exec sleep 300"


def test_status_shows_every_task_and_restart_gives_one_a_new_pid(rundir):
    with running(rundir, "-t", WEB, "-t", WORKER) as group:
        web = group.wait_state("web", "running")
        worker = group.wait_state("worker", "running")
        text = group.ctl("status")
        assert text.returncode == 0
        header, *rows = text.stdout.splitlines()
        assert header.split()[:3] == ["TASK", "STATE", "PID"]
        assert [row.split()[:3] for row in rows] == [
            ["web", "running", str(web["pid"])],
            ["worker", "running", str(worker["pid"])],
        ]
        restarted = group.ctl("restart", "web")
        assert (restarted.returncode, restarted.stdout) == (0, "restarted web\n")
        after = group.status()
        assert after["web"]["state"] == "running"
        assert after["web"]["pid"] not in (None, web["pid"])
        assert after["web"]["run"] == 2
        assert not alive(int(web["pid"]))  # type: ignore[call-overload]
        assert after["worker"]["pid"] == worker["pid"]  # untouched
        assert after["worker"]["run"] == 1
        assert group.proc.poll() is None
    assert b"attempt-failed" not in group.err.read_bytes()


def test_stop_leaves_the_group_running_and_start_runs_the_task_again(rundir):
    with running(rundir, "-t", WEB, "-t", WORKER) as group:
        first = group.wait_state("worker", "running")
        stopped = group.ctl("stop", "worker")
        assert (stopped.returncode, stopped.stdout) == (0, "stopped worker\n")
        status = group.status()
        assert status["worker"]["state"] == "stopped"
        assert status["worker"]["pid"] is None
        assert status["web"]["state"] == "running"
        assert not alive(int(first["pid"]))  # type: ignore[call-overload]
        time.sleep(0.3)
        assert group.proc.poll() is None  # a stop on request never cancels the group
        again = group.ctl("stop", "worker")
        assert again.returncode == 1
        assert again.stderr == "longrun ctl: task 'worker' is already stopped\n"
        started = group.ctl("start", "worker")
        assert (started.returncode, started.stdout) == (0, "started worker\n")
        worker = group.wait_state("worker", "running")
        assert worker["pid"] != first["pid"]
        assert worker["run"] == 2
        refused = group.ctl("start", "web")
        assert refused.returncode == 1
        assert refused.stderr == "longrun ctl: task 'web' is running; use restart\n"


def test_refusals_and_usage_have_their_exit_statuses(rundir):
    with running(rundir, "-t", WEB) as group:
        group.wait_state("web", "running")
        unknown = group.ctl("restart", "nope")
        assert (unknown.returncode, unknown.stderr) == (1, "longrun ctl: no task named 'nope'\n")
        missing = group.ctl("stop")
        assert missing.returncode == 125
        assert "Missing argument" in missing.stderr
        assert missing.stderr.count("\n") == 1
    both = longrun("ctl", "--name", "a", "--control", "/x", "status")
    assert both.returncode == 125
    assert b"not both" in both.stderr
    nobody = longrun("ctl", "--control", str(rundir / "none.sock"), "status")
    assert nobody.returncode == 69
    assert nobody.stderr == f"longrun ctl: no running group at {rundir / 'none.sock'}\n".encode()
    by_name = longrun("ctl", "--name", "absent", "status", env=env_for(rundir))
    assert by_name.returncode == 69
    assert str(rundir / "longrun" / "absent.sock").encode() in by_name.stderr
    slash = longrun("ctl", "--name", "a/b", "status", env=env_for(rundir))
    assert slash.returncode == 125


def test_logs_returns_the_last_lines_of_each_task(rundir):
    count = "count=i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo line $i; done; exec sleep 300"
    errs = "errs=echo to stderr >&2; exec sleep 300"
    with running(rundir, "-t", count, "-t", errs) as group:
        wait_for(lambda: b"line 30" in group.out.read_bytes())
        wait_for(lambda: b"to stderr" in group.err.read_bytes())
        three = group.ctl("logs", "-n", "3", "count")
        assert three.returncode == 0
        assert three.stdout == "count | line 28\ncount | line 29\ncount | line 30\n"
        both = group.ctl("logs", "-n", "1")
        assert both.stdout == "count | line 30\nerrs  | to stderr\n"
        assert group.ctl("logs", "nope").returncode == 1


def test_logs_follow_streams_new_lines(rundir):
    ticker = "tick=i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"
    with running(rundir, "-t", ticker) as group:
        wait_for(lambda: b"tick 2" in group.out.read_bytes())
        follow = subprocess.Popen(
            [*LONGRUN, "ctl", "--control", str(group.socket), "logs", "-n", "0", "-f"],
            stdout=subprocess.PIPE,
            env=group.env,
        )
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in range(5)]
        numbers = [int(line.split()[-1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + 5))  # in order, none lost
        assert all(line.startswith(b"tick | tick ") for line in lines)
        group.proc.send_signal(signal.SIGTERM)
        assert follow.wait(timeout=20) == 0  # the group ended: so does -f


def test_shutdown_behaves_as_sigterm(rundir):
    hooks = rundir / "hooks"
    config = rundir / "longrun.toml"
    config.write_text(
        f"""
[tasks.web]
command = "exec sleep 300"
shutdown = "echo web $LONGRUN_STATUS >> {hooks}"
[tasks.db]
command = "exec sleep 300"
shutdown = "echo db $LONGRUN_STATUS >> {hooks}"
"""
    )
    with running(rundir, str(config)) as group:
        group.wait_state("web", "running")
        group.wait_state("db", "running")
        result = group.ctl("shutdown")
        assert result.returncode == 0
        # ctl returned once the group had ended: hooks done, socket gone.
        assert group.proc.poll() == -signal.SIGTERM
        assert hooks.read_text().splitlines() == ["db stopped", "web stopped"]
        assert not group.socket.exists()


def test_states_of_a_group_in_motion(rundir):
    config = rundir / "longrun.toml"
    config.write_text(
        """
[tasks.db]
command = "sleep 0.5; echo accepting; exec sleep 300"
ready = { stdout = "accepting" }
[tasks.app]
command = "exec sleep 300"
depends_on = { db = "ready" }
[tasks.flaky]
command = "exit 75"
retry = [{ exit_codes = [75], retries = "inf", backoff = "30s" }]
[tasks.tick]
command = "true"
interval = "1m"
[tasks.once]
command = "true"
"""
    )
    with running(rundir, str(config)) as group:
        early = group.status()
        assert early["app"]["state"] == "waiting"
        assert early["db"]["state"] == "starting"
        assert early["db"]["ready"] is False
        db = group.wait_state("db", "ready")
        assert db["ready"] is True
        group.wait_state("app", "running")
        flaky = group.wait_state("flaky", "backoff")
        assert flaky["last_exit"] == "75"
        assert 20 < float(flaky["next_in"]) <= 30  # type: ignore[arg-type]
        tick = group.wait_state("tick", "sleeping")
        assert 50 < float(tick["next_in"]) <= 60  # type: ignore[arg-type]
        assert group.wait_state("once", "succeeded")["last_exit"] == "0"


def test_socket_is_private_and_removed_on_every_way_out(rundir):
    with running(rundir, "-t", WEB) as group:
        group.wait_state("web", "running")
        assert stat.S_IMODE(group.socket.stat().st_mode) == 0o600
        assert stat.S_IMODE(group.socket.parent.stat().st_mode) == 0o700
        group.proc.send_signal(signal.SIGINT)
        group.proc.wait(timeout=20)
        assert not group.socket.exists()
    # A failing task cancels the group: the socket goes too.
    failing = longrun("group", "--name", "shop", "-t", "bad=sleep 0.3; exit 3", env=env_for(rundir))
    assert failing.returncode == 3
    assert not (rundir / "longrun" / "shop.sock").exists()
    # A failing hook does not keep it either.
    config = rundir / "longrun.toml"
    config.write_text('[tasks.ok]\ncommand = "true"\nshutdown = "exit 3"\n')
    hook = longrun("group", "--name", "shop", str(config), env=env_for(rundir))
    assert hook.returncode == 0
    assert b"hook-failed" in hook.stderr
    assert os.listdir(rundir / "longrun") == []


def test_a_second_group_of_the_same_name_is_refused_and_a_stale_socket_replaced(rundir):
    with running(rundir, "-t", WEB) as group:
        group.wait_state("web", "running")
        second = longrun("group", "--name", "shop", "-t", "x=true", env=env_for(rundir))
        assert second.returncode == 125
        expected = f"a group named 'shop' is already running ({group.socket}); use --name"
        assert expected.encode() in second.stderr
        assert second.stderr.count(b"\n") == 1
        assert group.ctl("status").returncode == 0  # the first one still answers
        # KILL leaves a stale socket file behind...
        group.proc.send_signal(signal.SIGKILL)
        group.proc.wait(timeout=10)
        assert group.socket.exists()
    # ...which the next start replaces.
    with running(rundir, "-t", WEB) as again:
        assert again.wait_state("web", "running")["run"] == 1


def test_no_control_serves_no_socket(rundir):
    result = longrun("group", "--no-control", "-t", "a=true", env=env_for(rundir))
    assert result.returncode == 0
    assert not (rundir / "longrun").exists()


def test_name_and_control_come_from_the_runner_table(rundir):
    sock = rundir / "own.sock"
    config = rundir / "longrun.toml"
    config.write_text(f'[runner]\ncontrol = "{sock}"\n[tasks.a]\ncommand = "exec sleep 300"\n')
    env = env_for(rundir)
    proc = start("group", str(config), env=env)
    try:
        wait_for(sock.exists)
        result = longrun("ctl", "--control", str(sock), "status", "--json", env=env)
        assert json.loads(result.stdout)["group"] == rundir.name  # the file's directory
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert not sock.exists()


def test_default_name_is_the_directory_and_ctl_finds_it_from_there(rundir):
    project = rundir / "myproj"
    project.mkdir()
    (project / "longrun.toml").write_text('[tasks.a]\ncommand = "exec sleep 300"\n')
    env = env_for(rundir)
    proc = start("group", env=env, cwd=project)
    try:
        wait_for((rundir / "longrun" / "myproj.sock").exists)
        result = subprocess.run(
            [*LONGRUN, "ctl", "status", "--json"], capture_output=True, env=env, cwd=project,
            check=False, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["group"] == "myproj"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_another_user_is_refused_by_peer_credentials(rundir):
    """Even when the socket file is opened up, a peer of another uid gets a refusal."""
    shared = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        sock = shared / "g.sock"
        with running(rundir, "-t", WEB, control=sock) as group:
            group.wait_state("web", "running")
            sock.chmod(0o666)
            # The client writes a moment after connecting, when the refusal is already
            # on its way: it must still be able to write, then read the refusal.
            client = (
                "import socket,sys,time;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);"
                "time.sleep(0.3);"
                's.sendall(b\'{"version":1,"verb":"status"}\\n\');print(s.makefile().readline())'
            )
            result = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "/usr/bin/python3", "-c", client, str(sock)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert result.stdout, result.stderr
            answer = json.loads(result.stdout)
            assert answer["ok"] is False
            assert answer["code"] == "forbidden"
            assert "uid 65534" in answer["error"]
            assert group.proc.poll() is None
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def raw_request(path: Path, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(payload)
        return json.loads(sock.makefile("rb").readline())  # type: ignore[no-any-return]


def test_the_protocol_can_be_driven_by_hand(rundir):
    """What longrun-ctl(1) documents: one JSON request per line, one response per line."""
    with running(rundir, "-t", WEB) as group:
        group.wait_state("web", "running")
        answer = raw_request(group.socket, b'{"version": 1, "verb": "status"}\n')
        assert answer["ok"] is True
        assert answer["version"] == 1
        wrong = raw_request(group.socket, b'{"version": 2, "verb": "status"}\n')
        assert wrong == {
            "version": 1,
            "ok": False,
            "code": "bad-request",
            "error": "unsupported version 2 (this longrun speaks 1)",
        }


def test_watch_in_a_pipe_prints_one_json_line_per_change(rundir):
    with running(rundir, "-t", WEB, "-t", WORKER) as group:
        group.wait_state("worker", "running")
        watch = subprocess.Popen(
            [*LONGRUN, "ctl", "--control", str(group.socket), "status", "--watch"],
            stdout=subprocess.PIPE,
            env=group.env,
        )
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())
        assert [t["state"] for t in first["tasks"]] == ["running", "running"]
        assert group.ctl("stop", "worker").returncode == 0
        seen = []
        while not seen or seen[-1]["worker"] != "stopped":
            line = json.loads(watch.stdout.readline())
            seen.append({t["name"]: t["state"] for t in line["tasks"]})
        group.proc.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=20) == 0
        assert seen[-1] == {"web": "running", "worker": "stopped"}


def test_watch_on_a_terminal_is_a_live_table(rundir):
    import pty
    import select

    with running(rundir, "-t", WEB, "-t", WORKER) as group:
        group.wait_state("worker", "running")
        controller, terminal = pty.openpty()
        watch = subprocess.Popen(
            [*LONGRUN, "ctl", "--control", str(group.socket), "status", "--watch"],
            stdin=terminal, stdout=terminal, stderr=terminal, env={**group.env, "COLUMNS": "120"},
        )  # fmt: skip
        os.close(terminal)
        screen = b""

        def read_for(seconds: float) -> None:
            nonlocal screen
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                ready, _, _ = select.select([controller], [], [], 0.05)
                if ready:
                    try:
                        screen += os.read(controller, 65536)
                    except OSError:
                        return

        read_for(1.5)
        assert b"longrun group shop" in screen
        for task in (b"web", b"worker"):
            assert task in screen
        assert b"running" in screen
        assert b"\x1b[" in screen  # colour and redraws: rich drives the terminal
        group.ctl("stop", "worker")
        read_for(1.0)
        assert b"stopped" in screen
        group.proc.send_signal(signal.SIGTERM)
        read_for(2.0)
        assert watch.wait(timeout=20) == 0
        assert b"the group has ended" in screen
        os.close(controller)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_control_directory_of_another_user_is_refused(rundir):
    directory = rundir / "longrun"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    result = longrun("group", "--name", "shop", "-t", "a=true", env=env_for(rundir))
    assert result.returncode == 125
    assert result.stderr == (
        f"longrun: error: control directory '{directory}' belongs to another user\n".encode()
    )


@pytest.mark.parametrize(
    ("task", "state", "last_exit"),
    [
        ('command = "exit 3"', "failed", "3"),
        ('command = "exit 75"\nretry = [{ exit_codes = [75], retries = 1, backoff = "10ms" }]',
         "exhausted", "75"),
    ],
)  # fmt: skip
def test_a_failed_group_shows_the_failure_while_its_hooks_run(rundir, task, state, last_exit):
    config = rundir / "longrun.toml"
    config.write_text(
        f"""
[tasks.web]
command = "exec sleep 300"
[tasks.bad]
{task}
shutdown = "sleep 3"
"""
    )
    with running(rundir, str(config)) as group:
        bad = group.wait_state("bad", state)
        assert bad["last_exit"] == last_exit
        assert group.status()["web"]["state"] == "stopped"
        refused = group.ctl("restart", "web")
        assert (refused.returncode, refused.stderr) == (
            1,
            "longrun ctl: the group is stopping\n",
        )
        assert group.proc.wait(timeout=20) == int(last_exit)
