"""The portable path (macOS's): what it keeps, and the one thing it cannot do."""

from __future__ import annotations

import ast
import os
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import PORTABLE_CORE, alive, longrun, read_pids, wait_for

pytestmark = pytest.mark.slow


def test_the_portable_core_names_real_tests():
    """Every core case named in conftest exists: a rename cannot drop one unnoticed."""
    here = Path(__file__).parent
    defined = {
        node.name
        for path in here.glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    assert defined >= PORTABLE_CORE


@pytest.mark.parametrize(("platform", "survives"), [("linux", False), ("portable", True)])
def test_an_escaped_daemon_is_stopped_only_where_the_subreaper_and_proc_exist(
    tmp_path, reap_strays, platform, survives
):
    """The difference the README states: without a subreaper and /proc, a daemon that left
    its process group with setsid outlives longrun (as it would under timeout(1))."""
    pids = tmp_path / "pids"
    env = {**os.environ, "LONGRUN_PLATFORM": platform}
    result = longrun(
        "exec", "--kill-after", "1s", "--", "sh", "-c",
        f"setsid sh -c 'echo $$ >> {pids}; exec sleep 60' < /dev/null > /dev/null 2>&1 &"
        f" sleep 0.3",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0
    wait_for(lambda: bool(read_pids(pids)))
    reap_strays.extend(read_pids(pids))
    (daemon,) = read_pids(pids)
    if survives:
        assert alive(daemon)
        os.kill(daemon, signal.SIGKILL)
    else:
        wait_for(lambda: not alive(daemon), timeout=10)
