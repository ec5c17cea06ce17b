"""The codebase stays typed (mypy strict) and linted/formatted (ruff) as pyproject.toml says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_lint_passes():
    """ruff check finds nothing in the package, tests and benchmarks."""
    result = run("ruff", "check", "longrun_cli", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    """Every file is formatted as ruff format would write it."""
    result = run("ruff", "format", "--check", "longrun_cli", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes():
    """mypy --strict (configured in pyproject.toml) accepts the package."""
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
