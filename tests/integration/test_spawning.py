"""Spawning for real, both ways: posix_spawn (the quick path) and Popen (for a cwd or
inherited descriptors) fail alike, with a shell's statuses."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from longrun_cli.engine import process
from longrun_cli.engine.launch import LaunchSpec, SpawnError
from longrun_cli.engine.process import Supervisor

pytestmark = pytest.mark.slow


def launch(spec: LaunchSpec) -> Any:
    async def main() -> Any:
        supervisor = Supervisor()
        try:
            return supervisor.spawn(spec)
        finally:
            supervisor.close()

    return asyncio.run(main())


@pytest.mark.parametrize("quick", [True, False])
def test_both_ways_of_spawning_map_real_failures_alike(tmp_path, quick):
    """posix_spawn and Popen: a missing command 127, a file without x 126, a file
    without #! 126 (not an executable format), a missing interpreter 126."""
    before, process._QUICK = process._QUICK, quick
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    noshebang = tmp_path / "noshebang"
    noshebang.write_bytes(b"\x7fELF garbage")
    noshebang.chmod(0o755)
    badinterp = tmp_path / "badinterp"
    badinterp.write_text("#!/nonexistent/interp\necho hi\n")
    badinterp.chmod(0o755)
    cases = [
        ("no-such-command-here", 127, "command not found"),
        (str(plain), 126, "permission denied"),
        (str(noshebang), 126, "not an executable format"),
        (str(badinterp), 126, "bad interpreter /nonexistent/interp"),
    ]
    for command, status, message in cases:
        with pytest.raises(SpawnError) as info:
            launch(LaunchSpec(argv=[command], env={"PATH": os.environ["PATH"]}))
        assert info.value.status == status, command
        assert message in str(info.value), (command, str(info.value))
    process._QUICK = before
