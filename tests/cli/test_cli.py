"""The click layer: parsing, help, usage errors, dry-run and what start-up imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longrun_cli.cli.main import main

SPEC_OPTIONS = [
    "--name", "--interval", "--delay", "--timeout", "--deadline", "--stop-signal",
    "--kill-after", "--retry-exit-code", "--retry-stderr", "--retry-signal", "--retry-timeout",
    "--jitter", "--success-exit-code", "--shutdown", "--shutdown-timeout", "--foreground",
    "--log-format", "-v", "-q", "--dry-run",
]  # fmt: skip


def call(*argv: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return int(info.value.code or 0)


def test_exec_help_lists_every_option_of_the_spec(capsys):
    """Every option of SPEC §2 appears in longrun exec --help."""
    assert call("exec", "--help") == 0
    out = capsys.readouterr().out
    missing = [option for option in SPEC_OPTIONS if option not in out]
    assert missing == []
    assert "Examples:" in out


def test_top_level_help_lists_exec(capsys):
    """longrun --help names the exec command."""
    assert call("--help") == 0
    assert "exec" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    """An unknown subcommand exits 125 with one line."""
    assert call("frobnicate") == 125
    assert capsys.readouterr().err.count("\n") == 1


def test_options_after_the_command_belong_to_the_command(capsys):
    """Parsing stops at COMMAND: its own flags are not longrun's."""
    assert call("exec", "--dry-run", "ls", "-l", "--timeout", "x") == 0
    assert "command:     ls -l --timeout x" in capsys.readouterr().out


def test_retry_timeout_takes_an_optional_value(capsys):
    """--retry-timeout alone uses the defaults (3 retries, 1s,30s,2)."""
    assert call("exec", "--dry-run", "--timeout", "1s", "--retry-timeout", "--", "x") == 0
    assert "timeout: retries=3 backoff=1s,30s,2" in capsys.readouterr().out


def test_dry_run_orders_rules_as_they_are_checked(capsys):
    """The plan lists timeout, signal, stderr, then exit-code rules."""
    assert (
        call(
            "exec",
            "--dry-run",
            "--retry-exit-code",
            "75",
            "--retry-stderr",
            "busy",
            "--retry-signal",
            "KILL",
            "--retry-timeout",
            "2",
            "--",
            "job",
        )
        == 0
    )
    out = capsys.readouterr().out
    order = [
        out.index(word) for word in ("1. timeout", "2. signal KILL", "3. stderr", "4. exit 75")
    ]
    assert order == sorted(order)


def test_dry_run_shows_a_prefix_of_unlimited_schedules(capsys):
    """inf retries show the first delays followed by an ellipsis."""
    assert call("exec", "--dry-run", "--retry-exit-code", "1:inf:100ms,2s", "--", "x") == 0
    assert "delays: 100ms 200ms 400ms 800ms 1.6s 2s 2s 2s …" in capsys.readouterr().out


def test_bad_value_message_names_option_and_value(capsys):
    """A malformed duration names both the option and the value."""
    assert call("exec", "--kill-after", "soon", "--", "x") == 125
    err = capsys.readouterr().err
    assert "--kill-after" in err
    assert "'soon'" in err


def python_output(code: str) -> str:
    """What a fresh interpreter prints for ``code``: sys.modules starts empty there."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_startup_imports_nothing_heavy():
    """exec -- true imports neither rich, re2, tomllib nor OpenTelemetry."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['longrun', 'exec', '--', 'true']\n"
        "try:\n"
        "    runpy.run_module('longrun_cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('rich', 're2', 'tomllib', 'opentelemetry')]\n"
        "print(heavy)\n"
    )
    assert python_output(code) == "[]"


def test_stderr_rules_load_re2_only_when_needed():
    """A --retry-stderr rule is what brings in the RE2 engine."""
    code = (
        "import sys\n"
        "from longrun_cli.cli.main import main\n"
        "try:\n"
        "    main(['exec', '--dry-run', '--retry-stderr', 'x', '--', 'true'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('re2' in sys.modules)\n"
    )
    assert python_output(code).endswith("True")


VALUE_OPTIONS = [
    "--interval", "--delay", "--timeout", "--deadline", "--stop-signal", "--kill-after",
    "--retry-exit-code", "--retry-stderr", "--retry-signal", "--retry-timeout", "--jitter",
    "--success-exit-code", "--shutdown-timeout", "--ready", "--health", "--state-file",
    "--circuit-breaker", "--ping",
]  # fmt: skip


@given(
    option=st.sampled_from(VALUE_OPTIONS),
    value=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=20,
    ),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_option_value_is_accepted_or_a_one_line_usage_error(option, value, capsys):
    """Random values end in a plan (0) or exit 125 with exactly one stderr line."""
    status = call("exec", "--dry-run", f"{option}={value}", "--", "true")
    captured = capsys.readouterr()
    assert status in (0, 125)
    if status == 125:
        assert captured.err.count("\n") == 1, captured.err
        assert captured.err.startswith("longrun: error: ")
    else:
        assert "task:" in captured.out


HEALTH_OPTIONS = ["--health-interval", "--health-timeout", "--health-failures", "--retry-unhealthy"]


@given(
    option=st.sampled_from(HEALTH_OPTIONS),
    value=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=20,
    ),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_health_setting_is_accepted_or_a_one_line_usage_error(option, value, capsys):
    """The --health-* settings and --retry-unhealthy, beside a valid --health probe."""
    status = call(
        "exec", "--dry-run", "--health=tcp:127.0.0.1:9", f"{option}={value}", "--", "true"
    )
    captured = capsys.readouterr()
    assert status in (0, 125)
    if status == 125:
        assert captured.err.count("\n") == 1, captured.err
        assert captured.err.startswith("longrun: error: ")
    else:
        assert "health:" in captured.out


def test_health_settings_without_health_are_refused(capsys):
    for option in HEALTH_OPTIONS:
        status = call("exec", "--dry-run", f"{option}=3", "--", "true")
        err = capsys.readouterr().err
        assert status == 125
        assert "need --health" in err or "needs --health" in err
