"""Group benchmark: 200 ``sleep`` tasks and one that fails after 2s, longrun vs honcho.

Run: .venv-bench/bin/python benchmarks/group_bench.py [--tasks N] [--repeats N]

Reports, for each tool in the same run: wall time from start to exit, CPU time of
the tool and all its children (user + system, from wait4), and how many of the
started processes were still alive afterwards (goal: none).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
LONGRUN = str(Path(PYTHON).with_name("longrun"))


def procfile(directory: Path, tasks: int, marker: str, fail_first: bool) -> Path:
    lines = [f"s{i}: sleep 60 {marker}" for i in range(tasks)]
    failing = "fail: sleep 2; exit 3"
    lines = [failing, *lines] if fail_first else [*lines, failing]
    path = directory / "Procfile"
    path.write_text("\n".join(lines) + "\n")
    return path


def survivors(marker: str) -> int:
    """Processes whose command line carries this run's marker."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            count += 1
    return count


def measure(argv: list[str], cwd: Path, marker: str) -> tuple[float, float, int, int]:
    began = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Children reaped by the tool are included in its rusage.
    cpu = usage.ru_utime + usage.ru_stime
    time.sleep(0.3)  # let anything the tool left behind show up
    left = survivors(marker)
    if left:
        subprocess.run(["pkill", "-KILL", "-f", marker], check=False)
    return wall, cpu, left, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    tools = {"longrun group --procfile": [LONGRUN, "group", "--procfile", "Procfile"]}
    honcho = shutil.which("honcho", path=str(Path(PYTHON).parent)) or shutil.which("honcho")
    if honcho:
        tools["honcho start"] = [honcho, "start"]
    # The failing task declared last starts after the 200 others have been spawned;
    # declared first, it starts at once. Both are reported.
    runs = [(f"{name}, fail {where}", argv, where == "first")
            for where in ("first", "last") for name, argv in tools.items()]  # fmt: skip
    samples: dict[str, list[tuple[float, float, int, int]]] = {label: [] for label, _, _ in runs}
    for repeat in range(args.repeats):
        for label, argv, fail_first in runs:
            with tempfile.TemporaryDirectory() as directory:
                marker = f"{900000 + repeat}"  # sleep 60 900000: harmless extra argument
                procfile(Path(directory), args.tasks, marker, fail_first)
                samples[label].append(measure(argv, Path(directory), marker))
    print(
        f"{args.tasks} sleep tasks + 1 failing after 2s, median of {args.repeats} "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')})"
    )
    print(f"  {'tool':36s} {'wall':>8s} {'cpu':>8s} {'left':>5s} {'exit':>5s}")
    for name, rows in samples.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        left = max(r[2] for r in rows)
        codes = sorted({r[3] for r in rows})
        print(f"  {name:36s} {wall:7.2f}s {cpu:7.2f}s {left:5d} {codes!s:>5s}")
    if not honcho:
        print("  honcho: not installed (pip install -e '.[bench]')")
    print("goal: longrun ends within 2.5s, under 1.0s CPU, nothing left running")


if __name__ == "__main__":
    main()
