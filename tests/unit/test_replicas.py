"""Replicas, ports and env-file precedence against simple references."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longrun_cli.cli.conventions import Conventions, apply
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.group import Condition, GroupSpec, GroupTask
from longrun_cli.policy.replicas import expand, parse_concurrency
from longrun_cli.policy.taskspec import TaskSpec

names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


def task(name: str, *deps: tuple[str, Condition], scale: int = 1, env=None) -> GroupTask:
    return GroupTask(TaskSpec(name=name, argv=("true",), env=env or {}), tuple(deps), scale=scale)


@given(st.dictionaries(names, st.integers(1, 1000), min_size=1, max_size=5), st.data())
def test_concurrency_values_parse_to_what_they_say(scales, data):
    items = [f"{name}={count}" for name, count in scales.items()]
    cut = data.draw(st.integers(0, len(items)))
    values = [",".join(items[:cut]), ",".join(items[cut:])]
    assert parse_concurrency([v for v in values if v]) == scales


@given(st.text(max_size=30))
def test_any_concurrency_text_parses_or_says_why(text):
    try:
        scales = parse_concurrency([text])
    except SpecError as exc:
        assert str(exc).startswith("-c ")
        assert "\n" not in str(exc)
    else:
        assert all(1 <= count <= 1000 for count in scales.values())


@pytest.mark.parametrize("bad", ["web", "=2", "web=0", "web=1001", "web=two", "web=2,", "web=٣"])
def test_bad_concurrency_values_are_refused(bad):
    with pytest.raises(SpecError):
        parse_concurrency([bad])


@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.integers(1000, 50000))
def test_replicas_names_ports_and_dependencies(counts, base):
    tasks = [task(f"t{i}", scale=count) for i, count in enumerate(counts)]
    tasks.append(task("last", *((f"t{i}", Condition.STARTED) for i in range(len(counts)))))
    expanded = expand(tasks, {}, base)
    by_name = {t.name: t for t in expanded}
    for index, count in enumerate(counts):
        replicas = [f"t{index}"] if count == 1 else [f"t{index}.{k}" for k in range(1, count + 1)]
        for number, name in enumerate(replicas, start=1):
            env = by_name[name].spec.env
            assert env["PORT"] == str(base + 100 * index + number - 1)
            assert env["LONGRUN_REPLICA"] == str(number)
        assert all((name, Condition.STARTED) in by_name["last"].depends_on for name in replicas)
    assert len(expanded) == sum(counts) + 1
    GroupSpec(expanded)  # still a valid DAG


def test_a_task_own_port_wins_and_unknown_scales_are_refused():
    expanded = expand([task("web", env={"PORT": "9"}), task("db")], {"db": 2}, 5000)
    assert [(t.name, t.spec.env["PORT"]) for t in expanded] == [
        ("web", "9"),
        ("db.1", "5100"),
        ("db.2", "5101"),
    ]
    with pytest.raises(SpecError, match="-c names no task: 'nope'"):
        expand([task("web")], {"nope": 2})


values = st.text(alphabet="abcXYZ019 _-./:", max_size=8)
keys = st.sampled_from(["A", "B", "C", "PORT_X", "HOME_X"])


@settings(max_examples=50)
@given(
    st.dictionaries(keys, values, max_size=4),  # longrun's environment
    st.dictionaries(keys, values, max_size=4),  # [runner] env_file
    st.dictionaries(keys, values, max_size=4),  # --env-file
    st.dictionaries(keys, values, max_size=4),  # the task's env_file
    st.dictionaries(keys, values, max_size=4),  # the task's env
)
def test_env_precedence_runner_files_task_files_then_env(
    tmp_path_factory, environ, runner, cli, task_file, task_env
):
    folder = tmp_path_factory.mktemp("env")

    def write(name: str, pairs: dict[str, str]) -> str:
        path = folder / name
        path.write_text("".join(f'{key}="{value}"\n' for key, value in pairs.items()))
        return str(path)

    spec = TaskSpec(name="t", argv=("true",), env=task_env, env_files=(write("task", task_file),))
    group = GroupSpec((GroupTask(spec),), env_files=(write("runner", runner),))
    applied = apply(
        group, Conventions(env_files=(write("cli", cli),)), plain=False, environ=environ
    )
    final = applied.tasks[0].spec
    seen = {**environ, **final.file_env, **final.env}
    expected = {**environ, **runner, **cli, **task_file, **task_env, "LONGRUN_REPLICA": "1"}
    assert seen == expected
    assert "PORT" not in final.env  # a TOML group gets PORT only with [runner] port


def test_a_plain_group_reads_dotenv_and_takes_its_port(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("PORT=7000\nGREETING=hi\n")
    group = GroupSpec((task("web"), task("worker")))
    applied = apply(group, Conventions(), plain=True, environ={})
    assert [t.spec.env["PORT"] for t in applied.tasks] == ["7000", "7100"]
    assert applied.tasks[0].spec.file_env == {"PORT": "7000", "GREETING": "hi"}
    # --env-file replaces ./.env; --port wins over PORT.
    Path("other.env").write_text("OTHER=1\n")
    other = apply(group, Conventions(("other.env",), 8000), plain=True, environ={"PORT": "1"})
    assert other.tasks[1].spec.file_env == {"OTHER": "1"}
    assert other.tasks[1].spec.env["PORT"] == "8100"
    assert os.path.basename(other.tasks[0].spec.env_files[0]) == "other.env"
