"""A 200-task group written the foreman way (replicas, .env, PORT) against 200 plain tasks.

Run: .venv/bin/python benchmarks/conventions_bench.py [--repeats N] [--write]

Both groups run 200 ``sleep`` processes and one task that fails after 2 s, in the
same run, interleaved; CPU is longrun and all its children (wait4). The foreman
way: 20 Procfile entries scaled to 10 replicas each with ``-c``, a ``.env`` of 20
variables read by python-dotenv, and PORT assigned to every replica. Goal: the
same CPU budget as the plain group (a ratio near 1). --write: docs/conventions-bench.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from group_bench import LONGRUN, measure


def plain(directory: Path, marker: str) -> list[str]:
    lines = [f"s{i}: sleep 60 {marker}" for i in range(200)] + ["fail: sleep 2; exit 3"]
    (directory / "Procfile").write_text("\n".join(lines) + "\n")
    return [LONGRUN, "group", "--no-control", "--procfile", "Procfile"]


def foreman(directory: Path, marker: str) -> list[str]:
    lines = [f"w{i}: sleep 60 {marker}" for i in range(20)] + ["fail: sleep 2; exit 3"]
    (directory / "Procfile").write_text("\n".join(lines) + "\n")
    (directory / ".env").write_text("".join(f'VAR_{i}="value {i}"\n' for i in range(20)))
    scales = ",".join(f"w{i}=10" for i in range(20))
    return [LONGRUN, "group", "--no-control", "--procfile", "Procfile", "-c", scales]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    setups = {"200 plain tasks": plain, "20 tasks x 10 replicas, .env, PORT": foreman}
    samples: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in setups}
    for repeat in range(args.repeats):
        for name, setup in setups.items():
            with tempfile.TemporaryDirectory() as folder:
                marker = f"{910000 + repeat}"
                argv = setup(Path(folder), marker)
                samples[name].append(measure(argv, Path(folder), marker))
    cpu = {name: statistics.median(r[1] for r in rows) for name, rows in samples.items()}
    wall = {name: statistics.median(r[0] for r in rows) for name, rows in samples.items()}
    left = {name: max(r[2] for r in rows) for name, rows in samples.items()}
    reference = cpu["200 plain tasks"]
    lines = [
        "# A group written the foreman way, against plain tasks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/conventions_bench.py "
        f"--write` (python {sys.version.split()[0]}, {os.cpu_count()} cpus): 200 `sleep` "
        f"processes and one task failing after 2 s, median of {args.repeats}, interleaved.",
        "",
        "| group | wall | CPU (longrun and children) | CPU ratio | left running |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {wall[name]:.2f} s | {cpu[name]:.2f} s | {cpu[name] / reference:.2f}x "
        f"| {left[name]} |"
        for name in setups
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        Path(__file__).resolve().parent.parent.joinpath("docs", "conventions-bench.md").write_text(
            text
        )


if __name__ == "__main__":
    main()
