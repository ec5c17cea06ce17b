"""Shell completions: generated from the live CLI, loadable, and really completing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
    """longrun exec --retry-<TAB> lists the four retry options."""
    assert sorted(bash_complete("longrun exec --retry-")) == [
        "--retry-exit-code",
        "--retry-signal",
        "--retry-stderr",
        "--retry-timeout",
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
