"""``longrun completion SHELL``: the script click generates, which calls back into longrun.

Built only when asked for (see ``_LazyGroup`` in main).
"""

from __future__ import annotations

import click

from longrun_cli.cli.main import cli

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_command(shell: str) -> int:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash:  longrun completion bash > ~/.local/share/bash-completion/completions/longrun
    zsh:   longrun completion zsh > "${fpath[1]}/_longrun"
    fish:  longrun completion fish > ~/.config/fish/completions/longrun.fish
    """
    click.echo(completion_script(shell), nl=False)
    return 0


def completion_script(shell: str) -> str:
    """The script click generates for SHELL; it calls back into longrun to complete."""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    script = completion_class(cli, {}, "longrun", "_LONGRUN_COMPLETE").source()
    return script if script.endswith("\n") else script + "\n"
