"""Hostile input gets one line and 125, in text and json modes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longrun_cli.cli.config import ConfigError, from_toml
from longrun_cli.cli.main import main
from longrun_cli.cli.procfile import from_procfile
from longrun_cli.policy.duration import parse_duration
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.signals import parse_signal
from longrun_cli.policy.spec import parse_exit_code_rule, parse_retries

LONGRUN = [sys.executable, "-m", "longrun_cli"]


def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


# Numbers far past Python's 4,300-digit limit for int(), in every numeric place.
huge = st.integers(4301, 6000).map(lambda n: "9" * n)
OPTIONS = [
    lambda n: ["--timeout", n],
    lambda n: ["--timeout", f"{n}ms"],
    lambda n: ["--interval", f"1.{n}s"],
    lambda n: ["--retry-exit-code", n],
    lambda n: ["--retry-exit-code", f"75:{n}"],
    lambda n: ["--retry-exit-code", f"75:3:{n}s"],
    lambda n: ["--retry-signal", n],
    lambda n: ["--stop-signal", n],
    lambda n: ["--retry-timeout", n],
    lambda n: ["--success-exit-code", n],
    lambda n: ["--jitter", n],
    lambda n: ["--kill-after", n],
]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(OPTIONS), huge, st.sampled_from(["text", "json"]))
def test_huge_numbers_are_one_line_in_both_modes(capsys, option, number, mode):
    """A 5,000-digit number in any option: 0 (a valid fraction) or 125 with one line."""
    status, out, err = call(
        ["exec", "--dry-run", f"--log-format={mode}", *option(number), "--", "true"], capsys
    )
    assert status in (0, 125)
    if status == 125:
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert out == ""
        if mode == "json":
            assert json.loads(lines[0])["level"] == "error"


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_duration, "9" * 5000 + "s"),
        (parse_retries, "9" * 5000),
        (parse_retries, "99999999999999999999"),
        (parse_signal, "9" * 5000),
        (parse_exit_code_rule, "9" * 5000),
    ],
)
def test_parsers_reject_huge_numbers_with_spec_errors(parse, text):
    """The pure parsers raise SpecError (never ValueError) for numbers beyond their range."""
    with pytest.raises(SpecError):
        parse(text)


def test_a_long_fraction_of_a_duration_is_exact_to_the_nanosecond():
    """0.000000001999… (5,000 digits) seconds is 1 ns, not an error."""
    assert parse_duration("0.000000001" + "9" * 5000 + "s") == 1


def test_a_retry_budget_of_twenty_digits_is_refused_not_listed(capsys):
    """--dry-run with 99999999999999999999 retries answers at once (it ran for minutes)."""
    status, _, err = call(
        ["exec", "--dry-run", "--retry-exit-code", "75:99999999999999999999", "--", "true"], capsys
    )
    assert status == 125
    assert "at most 1000000000 (or inf)" in err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "longrun.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[tasks.a]\ncommand = ["echo", "a\\u0000b"]\n', "contains a NUL byte"),
        (
            '[tasks.a]\ncommand = "echo hi"\nenv = { "A=B" = "x" }\n',
            "invalid environment variable name 'A=B'",
        ),
        (
            '[tasks.a]\ncommand = "echo hi"\nenv = { A = "x\\u0000" }\n',
            "environment variable A contains a NUL",
        ),
        ('[tasks.a]\ncommand = "echo hi"\ncwd = "/tmp\\u0000"\n', "cwd"),
        ('[tasks.a]\ncommand = "echo hi"\nshutdown = "echo \\u0000"\n', "shutdown hook"),
        ("a = " + "[" * 1000 + "]" * 1000 + "\n", "nested too deeply"),
        (
            '[tasks.a]\ncommand = "true"\nretry = [{ exit_codes = [1], timeout = true }]\n',
            "timeout = true cannot be combined",
        ),
        (
            '[tasks.a]\ncommand = "true"\nretry = [{ exit_codes = [1], signals = ["KILL"] }]\n',
            "both exit_codes and signals",
        ),
    ],
)
def test_toml_values_the_kernel_cannot_take_are_refused_at_load(tmp_path, text, fragment):
    """NUL bytes, '=' in env names, deep nesting, contradictory rules: a ConfigError, at load."""
    with pytest.raises(ConfigError) as info:
        from_toml(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_signal_rule_with_a_stderr_condition_keeps_both(tmp_path):
    """{ signals = [...], stderr = "..." } needs both (the stderr condition was dropped)."""
    group = from_toml(
        write(
            tmp_path,
            '[tasks.a]\ncommand = "true"\nretry = [{ signals = ["KILL"], stderr = "boom" }]\n',
        )
    )
    (rule,) = group.tasks[0].spec.policy.rules
    assert rule.matcher.signals == frozenset({9})
    assert rule.matcher.stderr == "boom"


def test_a_nul_in_a_procfile_is_refused(tmp_path):
    """A Procfile command with a NUL byte: one line naming it."""
    path = tmp_path / "Procfile"
    path.write_bytes(b"web: echo \0hi\n")
    with pytest.raises(ConfigError, match="NUL byte"):
        from_procfile(path, 30, None)


def test_a_directory_as_the_group_file_is_named(tmp_path):
    """group /tmp → 'is a directory', not [Errno 21]."""
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        from_toml(tmp_path)


def test_a_fifo_nobody_writes_does_not_block_forever(tmp_path, monkeypatch):
    """A FIFO whose writer never writes: an error after the patience, not a hang."""
    monkeypatch.setattr("longrun_cli.cli.textfile.READ_PATIENCE", 0.3)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"sleep 5 > {fifo}"])
    try:
        with pytest.raises(ConfigError, match="nothing to read"):
            from_toml(fifo)
    finally:
        writer.kill()
        writer.wait()


def test_a_fifo_with_text_is_read(tmp_path):
    """group <(generate): the text a process writes into a FIFO is read."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf '[tasks.a]\\ncommand = \"true\"\\n' > {fifo}"])
    try:
        group = from_toml(fifo)
    finally:
        writer.wait()
    assert [task.name for task in group.tasks] == ["a"]


def test_an_oversized_watchdog_interval_is_ignored():
    """WATCHDOG_USEC of 400 digits: no watchdog, no OverflowError."""
    from longrun_cli.telemetry.notify import Notifier

    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "9" * 400}
    )
    assert notifier is not None
    assert notifier.watchdog_seconds is None


def test_a_task_name_that_is_not_utf8_reaches_systemd_without_a_crash(tmp_path):
    """A non-UTF-8 command name (surrogate escapes) with NOTIFY_SOCKET: the retry still runs."""
    import socket

    address = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    script = tmp_path / "fail\xff"
    command = os.fsencode(str(tmp_path)) + b"/fail\xff"
    Path(os.fsdecode(command)).write_text("#!/bin/sh\nexit 75\n")
    os.chmod(os.fsdecode(command), 0o755)
    result = subprocess.run(
        [*LONGRUN, "exec", "--retry-exit-code", "75:1:1ms", "--", command],
        capture_output=True, env={**os.environ, "NOTIFY_SOCKET": address}, timeout=30, check=False,
    )  # fmt: skip
    receiver.close()
    assert result.returncode == 75, result.stderr
    assert b"Traceback" not in result.stderr
    assert script.name


@pytest.mark.parametrize(
    "argv",
    [
        ["exec", "--log-format", "json", "--bogus", "--", "true"],
        ["exec", "--log-format=json"],
        ["group", "--log-format=json", "-t", "a=true", "--deadline", "5s"],
    ],
)
def test_click_usage_errors_are_json_in_json_mode(capsys, argv):
    """Unknown options and a missing command: one JSON line with a time, 125."""
    status, out, err = call(argv, capsys)
    assert (status, out) == (125, "")
    (line,) = err.splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["time"].endswith("Z")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["completion"], "Choose from: bash, zsh, fish"),
        (["group", "sleep", "1"], "use -t NAME=COMMAND"),
        (["group", "-t", "a=true", "--deadline", "5s"], "--deadline is an exec option"),
        (
            ["exec", "--retry-stderr", "http://foo", "--", "true"],
            "write a colon inside the regex as \\:",
        ),
        (["exec", "--retry-timeout", "sleep", "5"], "put -- before the command"),
        (["exec", "--timeout", "0.0000000001", "--", "true"], "shorter than 1ns"),
    ],
)
def test_messages_say_what_to_do(capsys, argv, fragment):
    """The usual mistakes get one line that says what to write instead."""
    status, _, err = call(argv, capsys)
    assert status == 125
    assert len(err.splitlines()) == 1, err
    assert fragment in err
    assert "\\n" not in err
    assert "\\t" not in err


def test_a_float_duration_in_toml_is_read_or_called_too_large(tmp_path):
    """timeout = 1.5 is 1.5s; timeout = 1e308 is too large (it was "unknown unit 'e+'")."""
    group = from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\ntimeout = 1.5\n'))
    assert group.tasks[0].spec.timeout == 1_500_000_000
    with pytest.raises(ConfigError, match="too large"):
        from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\ntimeout = 1e308\n'))


def test_a_missing_interpreter_is_not_called_command_not_found(tmp_path):
    """#!/nonexistent/interp: 126 and 'bad interpreter', as a shell says, for a file that exists."""
    script = tmp_path / "job.sh"
    script.write_text("#!/nonexistent/interp\necho hi\n")
    script.chmod(0o755)
    result = subprocess.run([*LONGRUN, "exec", "--", str(script)], capture_output=True, check=False)
    assert result.returncode == 126
    assert b"bad interpreter /nonexistent/interp" in result.stderr
    assert b"command not found" not in result.stderr


def test_rules_that_can_never_fire_are_warned_about(capsys):
    """A retried code that counts as success, and a repeated rule: a warning each, and the run goes on."""
    status, _, err = call(
        ["exec", "--dry-run", "--success-exit-code", "75", "--retry-exit-code", "75",
         "--retry-exit-code", "3", "--retry-exit-code", "3:5", "--", "true"],
        capsys,
    )  # fmt: skip
    assert status == 0
    assert "rule 1 (exit 75) can never fire" in err
    assert "rule 3 (exit 3) repeats rule 2" in err


def test_a_dry_run_says_when_the_command_or_cwd_is_missing(capsys, tmp_path):
    """--dry-run validates what it can: a command not on PATH, a TOML cwd that does not exist."""
    status, out, _ = call(["exec", "--dry-run", "--", "no-such-command-here"], capsys)
    assert status == 0
    assert "not found on PATH: the run would fail, 127" in out
    config = write(tmp_path, '[tasks.a]\ncommand = "true"\ncwd = "missing-dir"\n')
    status, out, _ = call(["group", "--dry-run", str(config)], capsys)
    assert status == 0
    assert "missing-dir  (not found" in out
    assert "command:     true\n" in out


def test_rule_numbers_line_up_from_ten(capsys):
    """Twelve rules: ' 9.' and '10.' end in the same column."""
    codes = [arg for code in range(64, 76) for arg in ("--retry-exit-code", str(code))]
    _, out, _ = call(["exec", "--dry-run", *codes, "--", "true"], capsys)
    nine = next(line for line in out.splitlines() if "9. exit" in line)
    ten = next(line for line in out.splitlines() if "10. exit" in line)
    assert nine.index(".") == ten.index(".")


EXEC_VALUED = ["interval", "delay", "timeout", "deadline", "stop-signal", "kill-after", "jitter",
               "retry-exit-code", "retry-stderr", "retry-signal", "retry-timeout",
               "success-exit-code", "shutdown-timeout", "name", "log-format"]  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(EXEC_VALUED), st.text(max_size=30)), max_size=4),
    st.sampled_from(["text", "json"]),
)
def test_any_values_give_a_plan_or_one_printable_line(capsys, options, mode):
    """Arbitrary text (control characters, newlines, any script) in any option: 0, or 125 and one line."""
    argv = [f"--{name}={value}" for name, value in options]
    status, out, err = call(
        ["exec", "--dry-run", f"--log-format={mode}", *argv, "--", "true"], capsys
    )
    assert status in (0, 125), err
    if status == 125:
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].isprintable(), repr(lines[0])
        assert out == ""


def test_toml_errors_point_at_the_right_line(tmp_path):
    """An unknown sub-table on line 3 is reported on line 3 (it said 1); [task.web] on line 1."""
    with pytest.raises(ConfigError, match=r":3: tasks\.a\.extra: unknown key"):
        from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\n[tasks.a.extra]\nx = 1\n'))
    with pytest.raises(ConfigError, match=r":1: task: unknown key"):
        from_toml(write(tmp_path, '[task.web]\ncommand = "true"\n'))


def test_toml_values_are_shown_as_toml_not_python(tmp_path):
    """got 1 / got [1, "a"] / got true: never True or ['a']."""
    with pytest.raises(ConfigError) as info:
        from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\ntimeout = [1, "a"]\n'))
    assert 'got [1, "a"]' in str(info.value)
    with pytest.raises(ConfigError) as info:
        from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\nforeground = "yes"\n'))
    assert 'got "yes"' in str(info.value)


def test_codes_as_numbers_and_hooks_as_lists_are_taken(tmp_path):
    """retry_exit_code = 75 (a number) and shutdown = ["echo", "bye"] (argv) load."""
    group = from_toml(
        write(
            tmp_path,
            '[tasks.a]\ncommand = "true"\nretry_exit_code = 75\nshutdown = ["echo", "it\'s done"]\n',
        )
    )
    spec = group.tasks[0].spec
    assert [rule.matcher.exit_codes for rule in spec.policy.rules] == [frozenset({75})]
    assert spec.shutdown == "echo 'it'\"'\"'s done'"


def test_dependency_errors_name_the_line_of_depends_on(tmp_path):
    """Unknown dependencies and cycles point at the depends_on line (they had no line)."""
    with pytest.raises(ConfigError, match=r":3: task 'a' depends on unknown task 'b'"):
        from_toml(write(tmp_path, '[tasks.a]\ncommand = "true"\ndepends_on = ["b"]\n'))
    cycle = '[tasks.a]\ncommand = "true"\ndepends_on = ["b"]\n[tasks.b]\ncommand = "true"\ndepends_on = ["a"]\n'
    with pytest.raises(ConfigError, match=r":3: dependency cycle: a -> b -> a"):
        from_toml(write(tmp_path, cycle))


def test_values_that_were_not_utf8_are_shown_as_their_bytes():
    """A non-UTF-8 argument (os.fsdecode gives \\udcff) is shown as \\xff, not as a Python repr."""
    with pytest.raises(SpecError) as info:
        parse_duration(os.fsdecode(b"\xff"))
    assert "'\\xff'" in str(info.value)
    assert "udcff" not in str(info.value)
