"""The JSON dry-run plan: what it holds, and that its canonical arguments build it again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from longrun_cli.cli.main import main
from longrun_cli.policy.backoff import format_multiplier
from longrun_cli.policy.duration import SECOND, format_duration
from longrun_cli.policy.matcher import format_codes

LONGRUN = str(Path(sys.executable).parent / "longrun")

Check = Callable[[dict[str, Any]], None]


def call(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


def dry_run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = call(["exec", "--dry-run", "--log-format=json", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- generators of option values, each with what the plan must then say ---------------

durations = st.integers(0, 10**13)


@st.composite
def duration_text(draw: st.DrawFn, nanos: int) -> str:
    """Equivalent spellings of one duration: Go's, in nanoseconds, or bare seconds."""
    forms = [format_duration(nanos), f"{nanos}ns"]
    if nanos % SECOND == 0:
        forms.append(str(nanos // SECOND))
    return draw(st.sampled_from(forms))


@st.composite
def duration_option(draw: st.DrawFn, option: str, key: str) -> tuple[list[str], Check]:
    # A zero period or bound is an error; the garbage test covers that.
    may_be_zero = option in ("delay", "kill-after")
    nanos = draw(durations if may_be_zero else durations.filter(lambda n: n > 0))
    text = draw(duration_text(nanos))

    def check(plan: dict[str, Any]) -> None:
        assert plan[key] == format_duration(nanos), (option, text)

    return [f"--{option}={text}"], check


signal_numbers = st.sampled_from(
    [int(s) for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]
)


@st.composite
def signal_text(draw: st.DrawFn) -> tuple[int, str]:
    number = draw(signal_numbers)
    name = signal.Signals(number).name
    forms = [name, name.removeprefix("SIG"), name.lower(), str(number)]
    return number, draw(st.sampled_from(forms))


@st.composite
def stop_signal_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    number, text = draw(signal_text())

    def check(plan: dict[str, Any]) -> None:
        assert signal.Signals[f"SIG{plan['stop_signal']}"] == number

    return [f"--stop-signal={text}"], check


@st.composite
def budget(draw: st.DrawFn) -> tuple[str, int | None, dict[str, Any]]:
    """``RETRIES:BACKOFF`` text with the retries and backoff record it must give."""
    retries = draw(st.none() | st.integers(1, 20))
    initial = draw(st.integers(1, 10**11))
    cap = draw(st.sampled_from([0, initial, initial * 7, 30 * SECOND * 1000]))
    multiplier = draw(st.floats(0.25, 8.0))
    text = (
        f"{'inf' if retries is None else retries}:"
        f"{draw(duration_text(initial))},{format_duration(cap)},{format_multiplier(multiplier)}"
    )
    record = {
        "initial": format_duration(initial),
        "max": format_duration(cap),
        "multiplier": multiplier,
    }
    return text, retries, record


def rule_check(kind: str, value: Any, retries: int | None, backoff: dict[str, Any]) -> Check:
    def check(plan: dict[str, Any]) -> None:
        matching = [
            rule
            for rule in plan["rules"]
            if rule[kind] == value and rule["retries"] == retries and rule["backoff"] == backoff
        ]
        assert matching, (kind, value, retries, backoff, plan["rules"])

    return check


@st.composite
def exit_code_rule(draw: st.DrawFn) -> tuple[list[str], Check]:
    codes = draw(st.frozensets(st.integers(1, 255), min_size=1, max_size=4))
    text, retries, backoff = draw(budget())
    checks = [rule_check("exit_codes", [code], retries, backoff) for code in codes]

    def check(plan: dict[str, Any]) -> None:
        for one in checks:
            one(plan)

    return [f"--retry-exit-code={format_codes(codes)}:{text}"], check


@st.composite
def signal_rule(draw: st.DrawFn) -> tuple[list[str], Check]:
    number, name = draw(signal_text())
    text, retries, backoff = draw(budget())
    short = signal.Signals(number).name.removeprefix("SIG")
    return [f"--retry-signal={name}:{text}"], rule_check("signals", [short], retries, backoff)


# As typed (\\: is a colon inside the regex, other pairs stay) → the regex longrun uses.
REGEXES = [
    ("refused", "refused"),
    (r"a\:b", "a:b"),
    (r"\d+\:x", r"\d+:x"),
    ("^E[0-9]{3}$", "^E[0-9]{3}$"),
    ("x|y", "x|y"),
    (r"host\\\:", r"host\\:"),
    ("(?i)busy", "(?i)busy"),
    (r"é\:ü", "é:ü"),
]


@st.composite
def stderr_rule(draw: st.DrawFn) -> tuple[list[str], Check]:
    written, regex = draw(st.sampled_from(REGEXES))
    text, retries, backoff = draw(budget())
    return [f"--retry-stderr={written}:{text}"], rule_check("stderr", regex, retries, backoff)


@st.composite
def timeout_rule(draw: st.DrawFn) -> tuple[list[str], Check]:
    text, retries, backoff = draw(budget())
    return [f"--retry-timeout={text}"], rule_check("timeout", True, retries, backoff)


# A probe as typed → the plan's record of it.
PROBES = [
    ("http://127.0.0.1:8080/health", {"http": "http://127.0.0.1:8080/health"}),
    ("http:localhost:9/x?y=1", {"http": "http://localhost:9/x?y=1"}),
    ("HTTPS://[::1]:8443/", {"http": "https://[::1]:8443/"}),
    ("tcp:127.0.0.1:5432", {"tcp": "127.0.0.1:5432"}),
    ("tcp:[::1]:80", {"tcp": "[::1]:80"}),
    ("stdout:Listening on", {"stdout": "Listening on"}),
    ("stderr:^ok: (\\d+)$", {"stderr": "^ok: (\\d+)$"}),
    ("output:x|y", {"output": "x|y"}),
    ("cmd:pg_isready -q && echo 'a:b'", {"command": "pg_isready -q && echo 'a:b'"}),
]


@st.composite
def ready_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    written, record = draw(st.sampled_from(PROBES))

    def check(plan: dict[str, Any]) -> None:
        assert plan["ready"] == {**record, "interval": "1s"}

    return [f"--ready={written}"], check


@st.composite
def health_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    """--health with every setting, and a --retry-unhealthy rule (each single-valued)."""
    written, record = draw(st.sampled_from(PROBES))
    interval = draw(st.integers(1, 10**12))
    bound = draw(st.integers(1, 10**12))
    failures = draw(st.integers(1, 1000))
    text, retries, backoff = draw(budget())
    args = [
        f"--health={written}",
        f"--health-interval={draw(duration_text(interval))}",
        f"--health-timeout={draw(duration_text(bound))}",
        f"--health-failures={failures}",
        f"--retry-unhealthy={text}",
    ]
    rule = rule_check("unhealthy", True, retries, backoff)

    def check(plan: dict[str, Any]) -> None:
        assert plan["health"] == {
            **record,
            "interval": format_duration(interval),
            "timeout": format_duration(bound),
            "failures": failures,
        }
        rule(plan)

    return args, check


@st.composite
def state_file_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    name = draw(st.sampled_from(["state.json", "/var/lib/job/state", "a b/ü.json", "../x"]))

    def check(plan: dict[str, Any]) -> None:
        import os

        assert plan["state_file"] == os.path.abspath(name)

    return [f"--state-file={name}"], check


LOCKS = [
    ("/var/lock/job.lock", "file:/var/lock/job.lock"),
    ("file:relative/x", "file:relative/x"),
    ("etcd://127.0.0.1:2379/jobs/poll", "etcd://127.0.0.1:2379/jobs/poll"),
    ("etcd://a:1,[::1]:2/k", "etcd://a:1,[::1]:2/k"),
]


@st.composite
def lock_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    """--lock with --lock-wait (and --lock-ttl for etcd), all single-valued."""
    written, url = draw(st.sampled_from(LOCKS))
    wait = draw(st.none() | st.integers(0, 10**12))
    ttl = draw(st.integers(2, 3600)) * SECOND if url.startswith("etcd") else None
    args = [f"--lock={written}"]
    if wait is not None:
        args.append(f"--lock-wait={draw(duration_text(wait))}")
    if ttl is not None:
        args.append(f"--lock-ttl={format_duration(ttl)}")

    def check(plan: dict[str, Any]) -> None:
        assert plan["lock"]["url"] == url
        assert plan["lock"]["wait"] == (None if wait is None else format_duration(wait))
        assert plan["lock"]["ttl"] == (None if ttl is None else format_duration(ttl))

    return args, check


@st.composite
def success_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    codes = draw(st.frozensets(st.integers(1, 255), min_size=1, max_size=5))

    def check(plan: dict[str, Any]) -> None:
        assert set(plan["success_exit_codes"]) >= codes | {0}

    return [f"--success-exit-code={format_codes(codes)}"], check


@st.composite
def jitter_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    ratio = draw(st.floats(0.0, 1.0))

    def check(plan: dict[str, Any]) -> None:
        assert plan["jitter"] == ratio

    return [f"--jitter={ratio!r}"], check


@st.composite
def text_option(draw: st.DrawFn, option: str, key: str) -> tuple[list[str], Check]:
    chars = st.characters(blacklist_categories=["Cs"], blacklist_characters="\0")
    value = draw(st.text(chars, min_size=1, max_size=12))

    def check(plan: dict[str, Any]) -> None:
        assert plan[key] == value

    return [f"--{option}={value}"], check


def no_check(_plan: dict[str, Any]) -> None:
    """Garbage values promise nothing about the plan, only the round trip and the exit status."""


@st.composite
def garbage_option(draw: st.DrawFn) -> tuple[list[str], Check]:
    option = draw(
        st.sampled_from(
            [
                "interval",
                "delay",
                "timeout",
                "deadline",
                "stop-signal",
                "kill-after",
                "jitter",
                "retry-exit-code",
                "retry-stderr",
                "retry-signal",
                "retry-timeout",
                "success-exit-code",
                "shutdown-timeout",
                "ready",
                "health",
                "state-file",
                "lock",
                "lock-ttl",
            ]
        )
    )
    value = draw(st.text(alphabet="0123456789.,:-+ainfmsuhKILTERMHUP\\x ", max_size=14))
    return [f"--{option}={value}"], no_check


VALID_OPTIONS = st.one_of(
    duration_option("interval", "interval"),
    duration_option("delay", "delay"),
    duration_option("timeout", "timeout"),
    duration_option("deadline", "deadline"),
    duration_option("kill-after", "kill_after"),
    duration_option("shutdown-timeout", "shutdown_timeout"),
    stop_signal_option(),
    exit_code_rule(),
    signal_rule(),
    stderr_rule(),
    timeout_rule(),
    ready_option(),
    health_option(),
    state_file_option(),
    lock_option(),
    success_option(),
    jitter_option(),
    text_option("name", "task"),
    text_option("shutdown", "shutdown"),
    st.just((["--foreground"], lambda plan: None)),
)
SINGLE_VALUED = ("--interval", "--delay", "--timeout", "--deadline", "--kill-after",
                 "--shutdown-timeout", "--stop-signal", "--jitter", "--name", "--shutdown",
                 "--retry-timeout", "--ready", "--health", "--state-file", "--lock")  # fmt: skip


def option_sets(garbage: bool) -> st.SearchStrategy[list[tuple[list[str], Check]]]:
    each = st.one_of(VALID_OPTIONS, garbage_option()) if garbage else VALID_OPTIONS
    return st.lists(each, max_size=8)


def assemble(options: list[tuple[list[str], Check]]) -> tuple[list[str], list[Check]]:
    """The argv, and the checks that still apply: a single-valued option's last use wins."""
    argv: list[str] = []
    checks: list[Check] = []
    last_index = {}
    for index, (args, _check) in enumerate(options):
        last_index[args[0].split("=")[0]] = index
    for index, (args, check) in enumerate(options):
        option = args[0].split("=")[0]
        if option == "--lock" and last_index[option] != index:
            continue  # its --lock-wait/--lock-ttl would outlive it: only the last --lock is kept
        argv += args
        if option not in SINGLE_VALUED or last_index[option] == index:
            checks.append(check)
    return argv, checks


COMMAND = ["--", "job", "--flag", "a b", "-x"]


def assert_one_line_error(err: str) -> None:
    """With --log-format json a usage error is one JSON record on one line."""
    assert err.count("\n") == 1, err
    record = json.loads(err)
    assert (record["level"], record["event"]) == ("error", "usage"), err


def assert_round_trip(plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = dry_run(plan["arguments"], capsys)
    assert status == 0, err
    assert json.loads(out) == plan


@given(options=option_sets(garbage=False))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_valid_option_sets_give_the_plan_they_ask_for_and_it_round_trips(options, capsys):
    """Well-formed options end in a plan that says what they asked and rebuilds itself."""
    argv, checks = assemble(options)
    status, out, err = dry_run([*argv, *COMMAND], capsys)
    assert status == 0, err
    plan = json.loads(out)
    assert plan["command"] == COMMAND[1:]
    for check in checks:
        check(plan)
    assert_round_trip(plan, capsys)


@given(options=option_sets(garbage=True))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_option_sets_give_a_round_tripping_plan_or_one_line_125(options, capsys):
    """Any mix of good and bad values: a plan that rebuilds itself, or 125 and one line."""
    argv, _checks = assemble(options)
    status, out, err = dry_run([*argv, *COMMAND], capsys)
    event(f"exit status {status}")
    assert status in (0, 125), (argv, err)
    if status == 125:
        assert_one_line_error(err)
        assert out == ""
        return
    assert_round_trip(json.loads(out), capsys)


@given(options=option_sets(garbage=True))
@settings(max_examples=15, deadline=None)
def test_the_installed_command_round_trips_its_plan(options):
    """The same property end to end through the installed `longrun` executable."""
    argv, _checks = assemble(options)

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LONGRUN, "exec", "--dry-run", "--log-format=json", *args],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip

    first = run([*argv, *COMMAND])
    assert first.returncode in (0, 125), first.stderr
    if first.returncode == 125:
        assert_one_line_error(first.stderr)
        return
    plan = json.loads(first.stdout)
    second = run(plan["arguments"])
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == plan


def test_json_plan_of_the_design_example(capsys):
    """The design example's rule shows its five delays and a canonical argument list."""
    status, out, _err = dry_run(
        ["--interval", "30s", "--retry-exit-code", "75:5:2s,60s,3", "--", "./check.sh"], capsys
    )
    assert status == 0
    plan = json.loads(out)
    (rule,) = plan["rules"]
    assert rule["delays"] == ["2s", "6s", "18s", "54s", "1m0s"]
    assert rule["backoff"] == {"initial": "2s", "max": "1m0s", "multiplier": 3.0}
    assert "--retry-exit-code=75:5:2s,1m0s,3" in plan["arguments"]
    assert plan["arguments"][-2:] == ["--", "./check.sh"]


def test_group_json_plan_lists_levels_tasks_and_shutdown_order(capsys, tmp_path):
    """A group's JSON plan holds the start levels, each task's policy and the shutdown order."""
    config = tmp_path / "longrun.toml"
    config.write_text(
        '[tasks.db]\ncommand = "db"\n'
        '[tasks.web]\ncommand = "web"\ndepends_on = { db = "started" }\n'
        "retry = [{ exit_codes = [75], retries = 2 }]\n"
    )
    status = call(["group", "--dry-run", "--log-format=json", str(config)])
    plan = json.loads(capsys.readouterr().out)
    assert status == 0
    assert plan["start_order"] == [["db"], ["web"]]
    assert plan["shutdown_order"] == ["web", "db"]
    web = plan["tasks"][1]
    assert web["depends_on"] == {"db": "started"}
    assert web["rules"][0]["exit_codes"] == [75]
