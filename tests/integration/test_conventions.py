"""Env files, PORT and replicas with real processes, as foreman and honcho users expect them."""

from __future__ import annotations

import json
import signal

import pytest

from tests.integration.conftest import longrun
from tests.integration.test_ctl import running

pytestmark = pytest.mark.slow

SHOW = "echo $LONGRUN_TASK A=$A B=$B C=$C PORT=$PORT R=$LONGRUN_REPLICA"


def lines(output: bytes) -> set[str]:
    return {line.split("| ", 1)[-1] for line in output.decode().splitlines()}


def test_toml_env_files_layer_under_env_and_port_and_scale(tmp_path):
    (tmp_path / "runner.env").write_text("A=runner\nB=runner\nC=runner\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "web.env").write_text(
        "# the task's own\nexport B='web file'\nC=${A}-web\n"
    )
    (tmp_path / "longrun.toml").write_text(
        f"""
[runner]
env_file = "runner.env"
port = 8000
[tasks.web]
command = "{SHOW}"
env_file = ["conf/web.env"]
env = {{ C = "explicit" }}
[tasks.worker]
command = "{SHOW}"
scale = 2
"""
    )
    result = longrun(
        "group",
        "--no-control",
        str(tmp_path / "longrun.toml"),
        env={"A": "env", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == {
        "web A=runner B=web file C=explicit PORT=8000 R=1",
        "worker.1 A=runner B=runner C=runner PORT=8100 R=1",
        "worker.2 A=runner B=runner C=runner PORT=8101 R=2",
    }


def test_a_procfile_group_reads_dotenv_gets_ports_and_replicas(tmp_path):
    (tmp_path / ".env").write_text("A=from-dotenv\nPORT=6000\n")
    (tmp_path / "Procfile").write_text(f"web: {SHOW}\nworker: {SHOW}\n")
    result = longrun(
        "group", "--no-control", "--procfile", "Procfile", "-c", "worker=2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == {
        "web A=from-dotenv B= C= PORT=6000 R=1",
        "worker.1 A=from-dotenv B= C= PORT=6100 R=1",
        "worker.2 A=from-dotenv B= C= PORT=6101 R=2",
    }
    assert b"worker.1 |" in result.stdout  # the replicas' own prefixes
    # --env-file replaces ./.env, and --port sets the base.
    (tmp_path / "other.env").write_text("B=other\n")
    other = longrun(
        "group", "--no-control", "-t", f"one={SHOW}", "--env-file", "other.env", "--port", "9000",
        cwd=tmp_path,
    )  # fmt: skip
    assert lines(other.stdout) == {"one A= B=other C= PORT=9000 R=1"}


def test_exec_env_files_sit_under_the_environment_they_override(tmp_path):
    (tmp_path / "one.env").write_text("A=one\nB=one\n")
    (tmp_path / "two.env").write_text("B=two\n")
    result = longrun(
        "exec", "--env-file", str(tmp_path / "one.env"), "--env-file", str(tmp_path / "two.env"),
        "--", "sh", "-c", "echo A=$A B=$B", env={"A": "env", "B": "env", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout == b"A=one B=two\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exec", "--env-file", "missing.env", "--", "true"], "env file missing.env: no such file"),
        (["exec", "--env-file", "bad.env", "--", "true"], "bad.env:2: not a dotenv line: 'oops here'"),
        (["group", "-t", "a=true", "-c", "b=2"], "-c names no task: 'b'"),
        (["group", "-t", "a=true", "-c", "a=0"], "-c 'a=0': a replica count is an integer from 1 to 1000"),
        (["group", "-t", "a=true", "--port", "http"], "--port: expected a port number from 1 to 65535, got 'http'"),
        (["group", "--procfile", "Procfile", "--env-file", "bad.env"], "bad.env:2: not a dotenv line"),
    ],
)  # fmt: skip
def test_bad_files_and_values_get_one_line_and_125(tmp_path, args, message):
    (tmp_path / "bad.env").write_text("A=1\noops here\n")
    (tmp_path / "Procfile").write_text("a: true\n")
    for mode in ("text", "json"):
        result = longrun(*args[:1], "--log-format", mode, *args[1:], cwd=tmp_path)
        assert result.returncode == 125
        assert result.stderr.count(b"\n") == 1
        assert message.encode() in result.stderr
        if mode == "json":
            assert json.loads(result.stderr)["level"] == "error"


def test_a_toml_env_file_that_is_missing_names_the_file(tmp_path):
    (tmp_path / "longrun.toml").write_text('[tasks.a]\ncommand = "true"\nenv_file = "nope.env"\n')
    result = longrun("group", str(tmp_path / "longrun.toml"))
    assert result.returncode == 125
    assert f"env file {tmp_path / 'nope.env'}: no such file".encode() in result.stderr


def test_dependents_wait_for_every_replica_and_ctl_addresses_them(rundir):
    config = rundir / "longrun.toml"
    config.write_text(
        """
[tasks.worker]
command = "sleep $((LONGRUN_REPLICA / 2)); echo worker $LONGRUN_REPLICA done"
scale = 3
[tasks.report]
command = "echo report; exec sleep 300"
depends_on = { worker = "succeeded" }
[tasks.web]
command = "exec sleep 300"
scale = 2
"""
    )
    with running(rundir, str(config)) as group:
        group.wait_state("report", "running", timeout=20)
        out = [
            " | ".join(part.strip() for part in line.split("|", 1))
            for line in group.out.read_text().splitlines()
        ]
        assert out.index("report | report") > max(
            out.index(f"worker.{k} | worker {k} done") for k in (1, 2, 3)
        )
        before = group.status()
        restarted = group.ctl("restart", "web")
        assert restarted.stdout == "restarted web.1\nrestarted web.2\n"
        after = group.status()
        assert after["web.1"]["pid"] != before["web.1"]["pid"]
        one = group.ctl("restart", "web.2")
        assert one.stdout == "restarted web.2\n"
        final = group.status()
        assert final["web.1"]["pid"] == after["web.1"]["pid"]
        assert final["web.2"]["pid"] != after["web.2"]["pid"]
        group.proc.send_signal(signal.SIGTERM)
        group.proc.wait(timeout=20)


def test_dry_run_shows_replicas_ports_and_env_file_keys_not_values(tmp_path):
    (tmp_path / ".env").write_text("SECRET=hunter2\n")
    result = longrun("group", "--dry-run", "-t", "web=run", "-c", "web=2", cwd=tmp_path)
    text = result.stdout.decode()
    assert "task:        web.1" in text
    assert "task:        web.2" in text
    assert "PORT=5001" in text
    assert "(set SECRET; values not shown)" in text
    assert "hunter2" not in text
    record = json.loads(
        longrun("group", "--dry-run", "--log-format", "json", "-t", "web=run", cwd=tmp_path).stdout
    )
    (task,) = record["tasks"]
    assert task["env_file_keys"] == ["SECRET"]
    assert "hunter2" not in json.dumps(record)


STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}"


def test_group_timestamps_begin_each_line(tmp_path):
    import re

    result = longrun(
        "group", "--no-control", "--timestamps", "-t", "a=echo one; echo two", "-t", "b=echo bee >&2"
    )  # fmt: skip
    out = result.stdout.splitlines()
    assert len(out) == 2
    assert all(re.fullmatch(STAMP + rb" a \| (one|two)", line) for line in out)
    assert re.fullmatch(STAMP + rb" b \| bee", result.stderr.splitlines()[0])
    bare = longrun("group", "--no-control", "--timestamps", "--no-prefix", "-t", "a=echo one")
    assert re.fullmatch(STAMP + rb" one\n", bare.stdout)


def test_text_logs_carry_time_except_for_the_journal(tmp_path):
    import os
    import re

    result = longrun("exec", "--", "false")
    assert re.match(rb"longrun: time=" + STAMP + rb"[+-]\d\d:\d\d level=warn ", result.stderr)
    # Under systemd, JOURNAL_STREAM names stderr's device and inode: journald stamps lines.
    log = tmp_path / "err"
    with log.open("wb") as err:
        info = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        longrun("exec", "--", "false", stderr=err, env=env, capture_output=False)
    assert log.read_bytes().startswith(b"longrun: level=warn ")
    # Set for another stream (stderr is not the journal): stamped as usual.
    other = longrun("exec", "--", "false", env={**os.environ, "JOURNAL_STREAM": "1:2"})
    assert b"time=" in other.stderr


def test_procfile_names_as_foreman_takes_them_and_a_clear_refusal(tmp_path):
    (tmp_path / "Procfile").write_text("web.1: echo dotted\nworker-x_2: echo dashed\n")
    result = longrun("group", "--no-control", "--procfile", "Procfile", cwd=tmp_path)
    assert result.returncode == 0
    assert lines(result.stdout) == {"dotted", "dashed"}
    (tmp_path / "Bad").write_text("web: ok\nw@b: echo nope\n")
    bad = longrun("group", "--procfile", "Bad", cwd=tmp_path)
    assert bad.returncode == 125
    assert bad.stderr == (
        b"longrun: error: Bad:2: process name 'w@b' may only use letters, digits, "
        b"'_', '.' and '-'\n"
    )


def test_plain_tasks_take_the_exec_options_that_apply_to_every_task(tmp_path):
    result = longrun(
        "group", "--no-control",
        "-t", "flaky=echo try $LONGRUN_ATTEMPT; [ $LONGRUN_ATTEMPT -ge 3 ] || exit 75",
        "-t", "slow=echo slow; exec sleep 30",
        "--retry-exit-code", "75:5:10ms", "--timeout", "1s", "--stop-signal", "INT",
    )  # fmt: skip
    assert result.returncode == 124  # slow timed out (no rule for timeouts), after flaky succeeded
    assert lines(result.stdout) >= {"try 1", "try 2", "try 3", "slow"}
    assert b'task=slow event=timeout msg="timeout: sending INT"' in result.stderr
    toml = tmp_path / "longrun.toml"
    toml.write_text('[tasks.a]\ncommand = "true"\n')
    refused = longrun("group", str(toml), "--timeout", "1s")
    assert refused.returncode == 125
    assert b"--timeout applies to -t and --procfile tasks; in a TOML file, set it per task" in (
        refused.stderr
    )
