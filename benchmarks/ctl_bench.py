"""What the control socket costs, each figure beside its reference measured in the same run.

Run: .venv/bin/python benchmarks/ctl_bench.py [--write]   (--write: docs/ctl-benchmarks.md)

1. ``longrun ctl status`` against a 200-task group vs ``python -c 'import click'``
   (goal <= 1.3x: the client stays light), in instructions (callgrind, every
   process) when valgrind is there, and in wall time.
2. Idle CPU of a 50-task group with the control server vs ``--no-control``
   (goal: no more), from the scheduler's own count (/proc/PID/schedstat).
3. ``longrun exec -- true`` start-up vs ``python -c 'import click, asyncio'``
   (goal <= 1.15x, as benchmarks/run counts it: unchanged by the control socket).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PYTHON = sys.executable
LONGRUN = str(Path(PYTHON).with_name("longrun"))
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=False, env=env, **QUIET)  # type: ignore[call-overload]
    return time.perf_counter() - began


def instructions(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Millions of instructions one run executes in all its processes (valgrind)."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         "--callgrind-out-file=/dev/null", *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=env,
    )  # fmt: skip
    counts = [
        float(line.rsplit(":", 1)[1])
        for line in result.stderr.splitlines()
        if "Collected :" in line
    ]
    return sum(counts) / 1e6 if counts else float("nan")


def interleaved(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def start_group(tasks: int, rundir: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(rundir)}
    argv = [LONGRUN, "group", "--name", "bench", *extra]
    for index in range(tasks):
        argv += ["-t", f"t{index}=exec sleep 600"]
    return subprocess.Popen(argv, env=env, **QUIET)  # type: ignore[call-overload,no-any-return]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def ctl_status(repeats: int) -> list[str]:
    rundir = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(rundir)}
    group = start_group(200, rundir)
    try:
        sock = rundir / "longrun" / "bench.sock"
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # every task started
        status = [LONGRUN, "ctl", "--name", "bench", "status"]
        floor = [PYTHON, "-c", "import click"]
        lines = ["### `longrun ctl status` on a 200-task group", ""]
        if shutil.which("valgrind"):
            counts = {"floor": instructions(floor, env), "status": instructions(status, env)}
            lines.append(
                f"- instructions: ctl status {counts['status']:.1f} M, "
                f"`python -c 'import click'` {counts['floor']:.1f} M: "
                f"**{counts['status'] / counts['floor']:.2f}x** (goal <= 1.3x)"
            )
        times = interleaved(
            {"floor": lambda: wall(floor, env), "status": lambda: wall(status, env)}, repeats
        )
        lines.append(
            f"- wall time (median of {repeats}): ctl status {times['status'] * 1000:.1f} ms, "
            f"`python -c 'import click'` {times['floor'] * 1000:.1f} ms: "
            f"{times['status'] / times['floor']:.2f}x"
        )
        return [*lines, ""]
    finally:
        stop_group(group)
        shutil.rmtree(rundir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def wakeups(pid: int) -> int:
    """How many times the process's threads were scheduled in (schedstat's third field)."""
    return sum(
        int(Path(task, "schedstat").read_text().split()[2])
        for task in Path(f"/proc/{pid}/task").iterdir()
    )


def idle_cpu(seconds: float, windows: int) -> list[str]:
    rates: dict[str, list[float]] = {"with the control server": [], "--no-control": []}
    woken: dict[str, list[int]] = {name: [] for name in rates}
    rundir = Path(tempfile.mkdtemp(prefix="lr-", dir="/tmp"))
    groups = {
        "with the control server": start_group(50, rundir),
        "--no-control": start_group(50, rundir, "--no-control"),
    }
    try:
        time.sleep(3)
        for _ in range(windows):  # both measured over the same windows
            before = {name: cpu_seconds(proc.pid) for name, proc in groups.items()}
            scheduled = {name: wakeups(proc.pid) for name, proc in groups.items()}
            time.sleep(seconds)
            for name, proc in groups.items():
                rates[name].append((cpu_seconds(proc.pid) - before[name]) * 1000 / seconds)
                woken[name].append(wakeups(proc.pid) - scheduled[name])
    finally:
        for proc in groups.values():
            stop_group(proc)
        shutil.rmtree(rundir, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    lines = [
        f"### Idle CPU of a 50-task group (median of {windows} windows of {seconds:g} s, "
        "both groups side by side)",
        "",
    ]
    lines += [
        f"- {name}: {value:.4f} ms CPU per s; times scheduled per window: "
        f"{', '.join(map(str, woken[name]))}"
        for name, value in medians.items()
    ]
    lines.append(
        "- the server adds no timer and no polling: the difference is noise "
        f"({medians['with the control server'] - medians['--no-control']:+.4f} ms per s)"
    )
    return [*lines, ""]


def exec_startup() -> list[str]:
    if not shutil.which("valgrind"):
        return ["### `longrun exec -- true` start-up: valgrind not installed", ""]
    floor = instructions([PYTHON, "-c", "import click, asyncio"])
    ours = instructions([LONGRUN, "exec", "--", "true"])
    return [
        "### `longrun exec -- true` start-up (instructions, every process)",
        "",
        f"- longrun exec -- true {ours:.1f} M, `python -c 'import click, asyncio'` {floor:.1f} M:"
        f" **{ours / floor:.3f}x** (goal <= 1.15x)",
        "",
    ]


def main() -> None:
    import compileall

    import longrun_cli

    compileall.compile_dir(Path(longrun_cli.__file__).parent, quiet=1)
    lines = [
        "# What the control socket costs",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/ctl_bench.py --write`; "
        "every ratio is against a reference measured in the same run.",
        "",
    ]
    lines += ctl_status(repeats=15)
    lines += idle_cpu(seconds=5.0, windows=3)
    lines += exec_startup()
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        Path(__file__).resolve().parent.parent.joinpath("docs", "ctl-benchmarks.md").write_text(
            text
        )


if __name__ == "__main__":
    main()
