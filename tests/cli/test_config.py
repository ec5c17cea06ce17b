"""Loading groups from TOML, -t and Procfiles; every error names file, line and key."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.cli.config import ConfigError, from_toml
from longrun_cli.cli.manpage_text import TOML_SCHEMA
from longrun_cli.cli.procfile import from_inline, from_procfile
from longrun_cli.policy.duration import MINUTE, SECOND
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import Condition

# The schema the man page documents is the one the tests load.
SPEC_EXAMPLE = TOML_SCHEMA


def write(tmp_path: Path, text: str, name: str = "longrun.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_spec_example_loads(tmp_path):
    """The TOML schema of SPEC §5 loads with every field in place."""
    group = from_toml(write(tmp_path, SPEC_EXAMPLE))
    migrate, web, poll, report = group.tasks
    assert report.spec.schedule is not None
    assert report.spec.schedule.expression == "30 2 * * *"
    assert migrate.spec.argv == ("./migrate", "--up")
    assert migrate.spec.timeout == 5 * MINUTE
    assert len(migrate.spec.policy.rules) == 4
    assert web.spec.argv == ("gunicorn", "app:app")
    assert web.depends_on == (("migrate", Condition.SUCCEEDED),)
    assert web.ready is not None
    assert web.ready.stderr == "Listening at"
    assert web.spec.env == {"GREETING": "hi"}
    assert web.scale == 2
    assert web.spec.env_files == (str(tmp_path / "web.env"),)
    assert group.env_files == (str(tmp_path / ".env"),)
    assert group.port == 8000
    assert web.spec.cwd == str((tmp_path / "services/web").resolve())
    assert poll.spec.interval == 10 * SECOND
    assert group.shutdown_order() == ["report", "poll", "web", "migrate"]


def test_exec_style_spec_strings_are_accepted(tmp_path):
    """retry_exit_code etc. take the exec option syntax."""
    text = (
        '[tasks.a]\ncommand = "x"\nretry_exit_code = ["75:5:2s", "64-65"]\nretry_timeout = true\n'
    )
    (task,) = from_toml(write(tmp_path, text)).tasks
    assert len(task.spec.policy.rules) == 4


def test_combined_rule_needs_both_conditions(tmp_path):
    """{ exit_codes, stderr } in one rule makes a matcher with both."""
    text = '[tasks.a]\ncommand = "x"\nretry = [{ exit_codes = [1], stderr = "busy" }]\n'
    (rule,) = from_toml(write(tmp_path, text)).tasks[0].spec.policy.rules
    assert rule.matcher.exit_codes == {1}
    assert rule.matcher.stderr == "busy"


def test_runner_kill_after_is_every_tasks_default(tmp_path):
    """[runner] kill_after applies to tasks that do not set their own."""
    text = '[runner]\nkill_after = "2s"\n[tasks.a]\ncommand = "x"\n[tasks.b]\ncommand = "y"\nkill_after = "5s"\n'
    a, b = from_toml(write(tmp_path, text)).tasks
    assert (a.spec.kill_after, b.spec.kill_after) == (2 * SECOND, 5 * SECOND)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[tasks.web]\ncommand = "x"\nretri = []\n', ["longrun.toml:3", "tasks.web.retri", "did you mean 'retry'"]),
        ('[tasks.web]\ncommand = "x"\ntimeout = "5x"\n', ["longrun.toml:3", "tasks.web.timeout", "'5x'"]),
        ('[tasks.web]\ncommand = ""\n', ["longrun.toml:2", "tasks.web.command", "empty command"]),
        ('[tasks.web]\ncommand = 5\n', ["tasks.web.command", "got 5"]),
        ("[tasks.web]\ncomand = 'x'\n", ["tasks.web.comand", "did you mean 'command'"]),
        ('[tasks.web]\nport = 1\ncommand = "x"\n', ["tasks.web.port", "unknown key"]),
        ("[tasks.web]\ncommand = 'x'\ndepends_on = { db = 'started' }\n", ["unknown task 'db'"]),
        ("[tasks.a]\ncommand = 'x'\ndepends_on = ['b']\n[tasks.b]\ncommand = 'y'\ndepends_on = ['a']\n", ["cycle: a -> b -> a"]),
        ("[tasks.a]\ncommand = 'x'\ndepends_on = { b = 'healthy' }\n[tasks.b]\ncommand='y'\n", ["tasks.a.depends_on.b", "'healthy'"]),
        ("[tasks.a]\ncommand = 'x'\nretry = [{ exit_codes = [0] }]\n", ["tasks.a.retry.exit_codes", "0 is outside 1..255"]),
        ("[tasks.a]\ncommand = 'x'\nretry = [{ retries = 2 }]\n", ["a rule needs"]),
        ("[tasks.a]\ncommand = 'x'\nretry = [{ stderr = '(' }]\n", ["tasks.a.retry.stderr", "invalid regex"]),
        ("[tasks.a]\ncommand = 'x'\nready = { stdout = 'x', command = 'y' }\n", ["tasks.a.ready", "exactly one"]),
        ("[tasks.a]\ncommand = 'x'\nenv = { A = [1] }\n", ["tasks.a.env", "A: expected a string"]),
        ("[runner]\nshutdown_timeout = 'soon'\n[tasks.a]\ncommand='x'\n", ["longrun.toml:2", "runner.shutdown_timeout"]),
        ("[tasks]\n", ["define at least one"]),
        ("[task.a]\ncommand = 'x'\n", ["task: unknown key", "did you mean 'tasks'"]),
        ("[tasks.a]\ncommand = = 'x'\n", ["invalid TOML", "line 2"]),
        ("[tasks.'bad name']\ncommand = 'x'\n", ["tasks.bad name", "task names may only"]),
    ],
)  # fmt: skip
def test_bad_toml_names_file_line_and_key(tmp_path, text, fragments):
    """Errors carry the file, the line where it was found and the key."""
    with pytest.raises(ConfigError) as info:
        from_toml(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_documented_toml_examples_load(tmp_path):
    """Every TOML block of docs/group.md is a valid group file."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "docs" / "group.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        assert from_toml(write(tmp_path, block)).tasks


def test_missing_file_is_a_clear_error(tmp_path):
    """A missing longrun.toml says so."""
    with pytest.raises(ConfigError, match="no such file"):
        from_toml(tmp_path / "longrun.toml")


def test_procfile_reads_name_command_lines(tmp_path):
    """Comments and blank lines are skipped; commands run by sh -c."""
    path = write(
        tmp_path, "# comment\n\nweb: python -m http.server $PORT\nworker:  ./w.sh\n", "Procfile"
    )
    group = from_procfile(path, 30 * SECOND, None)
    assert [t.name for t in group.tasks] == ["web", "worker"]
    assert group.tasks[0].spec.argv == ("/bin/sh", "-c", "python -m http.server $PORT")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("web python\n", "Procfile:1: expected 'name: command'"),
        ("web: a\nweb: b\n", "Procfile:2: duplicate process name 'web' (first on line 1)"),
        ("we b: a\n", "Procfile:1"),
        ("# nothing\n", "no tasks defined"),
    ],
)
def test_bad_procfile_lines_are_named(tmp_path, text, fragment):
    """A bad Procfile line is reported with its number."""
    with pytest.raises(ConfigError, match="Procfile") as info:
        from_procfile(write(tmp_path, text, "Procfile"), 30 * SECOND, None)
    assert fragment in str(info.value)


def test_inline_tasks_and_their_errors():
    """-t NAME=COMMAND builds sh -c tasks; bad or duplicate names are errors."""
    group = from_inline(["a=echo $X", "b=sleep 1"], 30 * SECOND, 2 * SECOND)
    assert [t.spec.argv for t in group.tasks] == [("/bin/sh", "-c", "echo $X"), ("sleep", "1")]
    assert group.tasks[0].spec.kill_after == 2 * SECOND
    for bad, fragment in [("noequals", "NAME=COMMAND"), ("a=", "empty command"), ("=x", "NAME")]:
        with pytest.raises(ConfigError, match=fragment):
            from_inline([bad], 30 * SECOND, None)
    with pytest.raises(ConfigError, match="duplicate task name 'a'"):
        from_inline(["a=x", "a=y"], 30 * SECOND, None)


def test_stop_signal_accepts_names_and_numbers(tmp_path):
    """stop_signal = "INT" or 2."""
    text = "[tasks.a]\ncommand='x'\nstop_signal='INT'\n[tasks.b]\ncommand='y'\nstop_signal=2\n"
    a, b = from_toml(write(tmp_path, text)).tasks
    assert a.spec.stop_signal == b.spec.stop_signal == signal.SIGINT


@pytest.mark.parametrize(
    ("filename", "load"),
    [
        ("longrun.toml", from_toml),
        ("Procfile", lambda path: from_procfile(path, 30 * SECOND, None)),
    ],
)
@given(text=st.text(max_size=200))
def test_random_group_file_loads_or_raises_a_one_line_config_error(filename, load, text):
    """Arbitrary TOML or Procfile content never raises anything but a one-line SpecError."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / filename
        path.write_text(text, errors="surrogateescape")
        try:
            load(path)
        except SpecError as exc:
            assert str(exc)
            assert "\n" not in str(exc)


VALUES = st.one_of(
    st.text(max_size=8),
    st.integers(-5, 300),
    st.booleans(),
    st.lists(st.integers(0, 300), max_size=3),
)
KEYS = st.sampled_from(
    ["interval", "delay", "timeout", "deadline", "stop_signal", "kill_after", "jitter",
     "success_exit_codes", "shutdown", "shutdown_timeout", "foreground", "retry_exit_code",
     "retry_stderr", "retry_signal", "retry_timeout", "depends_on", "ready", "env", "cwd"]
)  # fmt: skip


@given(key=KEYS, value=VALUES)
def test_random_values_for_known_keys_load_or_raise_config_error(tmp_path_factory, key, value):
    """Any value of any type for any key: a group or a ConfigError, never a traceback."""
    import json

    path = tmp_path_factory.mktemp("cfg") / "longrun.toml"
    path.write_text(f'[tasks.a]\ncommand = "x"\n{key} = {json.dumps(value)}\n')
    try:
        from_toml(path)
    except SpecError as exc:
        assert "tasks.a" in str(exc) or "longrun.toml" in str(exc)


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("sleep 60", ("sleep", "60")),
        ("exec sleep 60", ("sleep", "60")),
        ("gunicorn app:app", ("gunicorn", "app:app")),
        ("echo $HOME", ("/bin/sh", "-c", "echo $HOME")),
        ("a=1 b", ("/bin/sh", "-c", "a=1 b")),
        ("cd /tmp", ("/bin/sh", "-c", "cd /tmp")),
        ("x > y", ("/bin/sh", "-c", "x > y")),
        ("echo 'a b'", ("/bin/sh", "-c", "echo 'a b'")),
        ("ls *.py", ("/bin/sh", "-c", "ls *.py")),
        ("a && b", ("/bin/sh", "-c", "a && b")),
    ],
)
def test_plain_command_strings_skip_the_shell(command, argv):
    """Plain words are executed directly; anything a shell must interpret goes to sh -c."""
    from longrun_cli.cli.toml_values import shell

    assert shell(command) == argv


def test_health_and_ready_take_a_probe_string_or_a_table(tmp_path):
    group = from_toml(
        write(
            tmp_path,
            """
[tasks.db]
command = "postgres"
ready = "tcp:127.0.0.1:5432"
health = "cmd:pg_isready -q"
retry_unhealthy = "2:1s"
[tasks.web]
command = "web"
health = { http = "http://127.0.0.1:8000/health", interval = "5s", timeout = "1s", failures = 2 }
retry = [{ unhealthy = true, retries = 4 }]
""",
        )
    )
    db, web = group.tasks
    assert db.ready is not None
    assert db.ready.tcp == "127.0.0.1:5432"
    assert db.spec.health is not None
    assert db.spec.health.probe.command == "pg_isready -q"
    assert db.spec.policy.rules[0].matcher.unhealthy
    assert web.spec.health is not None
    assert (web.spec.health.interval, web.spec.health.timeout) == (5 * SECOND, SECOND)
    assert web.spec.health.failures == 2
    assert web.spec.policy.rules[0].retries == 4


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('health = "udp:1.2.3.4:5"', "health: health 'udp:1.2.3.4:5': expected http:URL"),
        ('health = { tcp = "h:1", failures = 0 }', "failures"),
        ('health = { tcp = "h:1", every = "1s" }', "unknown key"),
        ("health = 3", "must be a probe"),
        ("retry = [{ unhealthy = true, timeout = true }]", "cannot be combined"),
        ('ready = "stdout:("', "invalid regex"),
    ],
)
def test_bad_health_settings_name_file_line_and_key(tmp_path, body, fragment):
    path = write(tmp_path, f'[tasks.a]\ncommand = "true"\n{body}\n')
    with pytest.raises(ConfigError) as info:
        from_toml(path)
    message = str(info.value)
    assert fragment in message
    assert f"{path}:3" in message
    assert "\n" not in message


def test_runner_state_gives_every_task_the_one_file(tmp_path):
    group = from_toml(
        write(
            tmp_path,
            '[runner]\nstate = "run/state.json"\n[tasks.a]\ncommand = "true"\n'
            '[tasks.b]\ncommand = "true"\nscale = 2\n',
        )
    )
    expected = str(tmp_path / "run" / "state.json")
    assert {task.spec.state_file for task in group.tasks} == {expected}


def test_runner_lock_makes_the_group_a_singleton(tmp_path):
    group = from_toml(
        write(
            tmp_path,
            '[runner]\nlock = "etcd://127.0.0.1:2379/shop"\nlock_ttl = "4s"\nlock_wait = "1m"\n'
            '[tasks.a]\ncommand = "true"\n',
        )
    )
    assert group.lock is not None
    assert (group.lock.kind, group.lock.key) == ("etcd", "shop")
    assert (group.lock.ttl, group.lock.wait) == (4 * SECOND, MINUTE)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('lock_wait = "1s"', "need lock"),
        ('lock = "etcd://h/k"', "is not HOST:PORT"),
        ('lock = "etcd://h:1/k"\nlock_ttl = "1500ms"', "whole seconds"),
        ('lock = "/tmp/x"\nlock_ttl = "5s"', "applies to an etcd:// lock"),
        ('lock = "zk://h:1/k"', "unknown scheme"),
    ],
)
def test_bad_runner_locks_are_one_line(tmp_path, body, fragment):
    path = write(tmp_path, f'[runner]\n{body}\n[tasks.a]\ncommand = "true"\n')
    with pytest.raises(ConfigError) as info:
        from_toml(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_big_plain_group_gets_ports_while_they_fit(tmp_path):
    """2,000 -t tasks: the default PORT stops at 65535 instead of failing the group; an
    asked-for base that overflows is still an error."""
    from longrun_cli.cli.conventions import Conventions, apply

    group = from_inline([f"t{i}=true" for i in range(2000)], 30 * SECOND, None)
    expanded = apply(group, Conventions(), plain=True, environ={})
    ports = [task.spec.env.get("PORT") for task in expanded.tasks]
    assert ports[0] == "5000"
    assert ports[605] == "65500"
    assert ports[606] is None
    with pytest.raises(ConfigError, match="above 65535"):
        apply(group, Conventions(port=5000), plain=True, environ={})
