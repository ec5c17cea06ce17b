"""Documentation generated from the live CLI must match what is committed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from longrun_cli.cli.main import cli
from longrun_cli.cli.manpage import pages

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "text"), sorted(pages().items()))
def test_man_pages_are_up_to_date(name, text):
    """man/ equals the output of python -m longrun_cli.cli.manpage (regenerate it if not)."""
    assert (ROOT / "man" / name).read_text() == text


@pytest.mark.parametrize("name", sorted(pages()))
def test_man_pages_render_without_warnings(name):
    """groff -ww renders every page without a single warning."""
    result = subprocess.run(
        ["groff", "-ww", "-man", "-Tutf8", str(ROOT / "man" / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["exec", "group"])
def test_the_reference_documents_every_option(name):
    """Every option of longrun exec and longrun group appears in its page of docs/."""
    readme = (ROOT / "docs" / f"{name}.md").read_text()
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    missing = [
        opt
        for param in command.params
        for opt in getattr(param, "opts", [])
        if opt.startswith("--") and opt != "--help" and f"`{opt}" not in readme
    ]
    assert missing == []


def test_option_tables_name_only_real_options():
    """Every option in a table row of the README or docs/ exists in the live CLI."""
    import re

    real = {
        opt
        for command in (
            cli.get_command(click.Context(cli), name)
            for name in cli.list_commands(click.Context(cli))
        )
        for param in command.params
        for opt in getattr(param, "opts", [])
    }
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    rows = [
        line for page in pages for line in page.read_text().splitlines() if line.startswith("| `-")
    ]
    named = {opt for row in rows for opt in re.findall(r"`(--?[a-z][a-z-]*)", row.split("|")[1])}
    assert named
    assert named - real == set()


def test_the_readme_is_a_front_page_and_its_links_resolve():
    """Under ~300 lines (the reference lives in docs/ and man/), and no link points nowhere."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"
