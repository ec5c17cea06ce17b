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
from tests.engine.launching import launch

pytestmark = pytest.mark.slow


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


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("own_path", [True, False])
def test_the_path_search_skips_what_cannot_run(tmp_path, monkeypatch, quick, own_path):
    """On longrun's own PATH (the C library searches) or the command's own (longrun
    does), as execvp: a file without x is passed over for a later one, and is 126
    only when nothing else is found."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for directory, status, mode in ((first, 1, 0o644), (second, 7, 0o755)):
        script = directory / "job"
        script.write_text(f"#!/bin/sh\nexit {status}\n")
        script.chmod(mode)
    (first / "onlyhere").write_text("#!/bin/sh\nexit 0\n")
    search = f"{first}:{second}:{os.environ['PATH']}"
    if own_path:
        monkeypatch.setenv("PATH", search)
    before, process._QUICK = process._QUICK, quick
    searched_by_libc = []
    real = os.posix_spawnp

    def spawnp(*args: Any, **kwargs: Any) -> int:
        searched_by_libc.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawnp", spawnp)

    def route(signum: int, callback: Any) -> None:
        asyncio.get_running_loop().add_signal_handler(signum, callback, signum)

    async def run(command: str) -> Any:
        supervisor = Supervisor()
        supervisor.install(route)
        try:
            child = supervisor.spawn(LaunchSpec(argv=[command], env={"PATH": search}))
            return (await child.wait()).code
        except SpawnError as exc:
            return exc.status
        finally:
            supervisor.close()

    try:
        assert asyncio.run(run("job")) == 7
        assert asyncio.run(run("onlyhere")) == 126
        assert asyncio.run(run("nowhere-at-all")) == 127
        assert bool(searched_by_libc) == (quick and own_path)
    finally:
        process._QUICK = before
