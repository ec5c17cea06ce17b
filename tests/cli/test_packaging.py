"""The wheel carries the man pages and completions to their conventional places."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from longrun_cli import DISTRIBUTION, __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_man_pages_and_completions(tmp_path):
    """share/man/man1, bash-completion, zsh site-functions and fish vendor completions."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel_name = DISTRIBUTION.replace("-", "_")
    (wheel,) = tmp_path.glob(f"{wheel_name}-*.whl")
    assert wheel.name.startswith(f"{wheel_name}-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"{wheel_name}-{__version__}.data/data/share/"
    for path in (
        "man/man1/longrun.1",
        "man/man1/longrun-exec.1",
        "man/man1/longrun-group.1",
        "bash-completion/completions/longrun.bash",
        "zsh/site-functions/_longrun",
        "fish/vendor_completions.d/longrun.fish",
    ):
        assert data + path in names
