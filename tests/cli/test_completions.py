"""Shell completions: generated from the live CLI, loadable, and really completing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from longrun_cli.cli.manpage import COMPLETION_FILES, completions

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)


@pytest.mark.parametrize(("name", "text"), sorted(completions().items()))
def test_completion_files_are_up_to_date(name, text):
    """completions/ equals what longrun completion prints (regenerate if not)."""
    assert (ROOT / "completions" / name).read_text() == text


@pytest.mark.parametrize("shell", sorted(COMPLETION_FILES))
def test_completion_command_prints_the_committed_script(shell):
    """longrun completion SHELL prints exactly the file in completions/."""
    result = subprocess.run(
        [sys.executable, "-m", "longrun_cli", "completion", shell],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout == (ROOT / "completions" / COMPLETION_FILES[shell]).read_text()


def bash_complete(line: str) -> list[str]:
    """Run the real bash completion function for ``line`` and return COMPREPLY."""
    words = line.split(" ")
    script = f"""
source {ROOT / "completions" / "longrun.bash"}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_longrun_completion longrun
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.split()


def test_bash_completes_the_subcommand():
    """longrun ex<TAB> → exec."""
    assert bash_complete("longrun ex") == ["exec"]


def test_bash_completes_retry_options():
    """longrun exec --retry-<TAB> lists the five retry options."""
    assert sorted(bash_complete("longrun exec --retry-")) == [
        "--retry-exit-code",
        "--retry-signal",
        "--retry-stderr",
        "--retry-timeout",
        "--retry-unhealthy",
    ]


def test_bash_completes_signal_names_for_stop_signal():
    """longrun exec --stop-signal TE<TAB> → TERM."""
    assert bash_complete("longrun exec --stop-signal TE") == ["TERM"]


def test_bash_loads_the_script():
    """Sourcing the bash script registers a completion for longrun."""
    result = subprocess.run(
        ["bash", "-c", f"source {ROOT / 'completions/longrun.bash'} && complete -p longrun"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "_longrun_completion" in result.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_loads_the_script():
    """zsh sources the script under compinit without an error."""
    script = f"autoload -U compinit && compinit -u && source {ROOT / 'completions/_longrun'} && whence -w _longrun_completion"
    result = subprocess.run(
        ["zsh", "-f", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "function" in result.stdout


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_loads_the_script_and_completes():
    """fish sources the script and completes longrun ex → exec."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    script = f"source {ROOT / 'completions/longrun.fish'}; complete -C 'longrun ex'"
    result = subprocess.run(
        ["fish", "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "exec"


def completion_items(line: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """What longrun answers the shell for ``line``: (type, value) pairs."""
    words = line.split(" ")
    result = subprocess.run(
        [sys.executable, "-m", "longrun_cli"],
        capture_output=True, text=True, check=True, timeout=30,
        env={**(env or os.environ), "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1),
             "_LONGRUN_COMPLETE": "bash_complete"},
    )  # fmt: skip
    return [tuple(item.split(",", 1)) for item in result.stdout.split()]  # type: ignore[misc]


def test_files_complete_for_the_group_file_and_procfile():
    assert completion_items("longrun group --procfile Proc") == [("file", "Proc")]
    assert completion_items("longrun group serv") == [("file", "serv")]


def test_programs_complete_after_exec_then_files():
    assert ("plain", "sleep") in completion_items("longrun exec -- slee")
    assert completion_items("longrun exec --timeout 5s -- sleep 6") == [("file", "6")]
    assert completion_items("longrun exec -- ./scr") == [("file", "./scr")]


def test_ctl_verbs_complete():
    assert bash_complete("longrun ctl st") == ["start", "status", "stop"]


def test_ctl_task_names_come_from_the_running_group(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(short)}
    group = subprocess.Popen(
        [sys.executable, "-m", "longrun_cli", "group", "--name", "comp",
         "-t", "web=exec sleep 60", "-t", "worker=exec sleep 60"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sock = short / "longrun" / "comp.sock"
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert completion_items("longrun ctl --name comp restart w", env) == [
            ("plain", "web"),
            ("plain", "worker"),
        ]
        assert completion_items("longrun ctl --name comp logs wo", env) == [("plain", "worker")]
        # No group of that name: nothing, without waiting.
        began = time.monotonic()
        assert completion_items("longrun ctl --name none stop w", env) == []
        assert time.monotonic() - began < 5
    finally:
        group.terminate()
        group.wait(timeout=20)
        shutil.rmtree(short, ignore_errors=True)
