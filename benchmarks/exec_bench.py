"""Benchmarks for ``longrun exec``, each measured beside its reference in the same run.

Run: .venv/bin/python benchmarks/exec_bench.py [--quick]

1. start-up: ``longrun exec -- true`` vs ``python -c 'import click, asyncio'`` (and honcho)
2. per-attempt overhead: 200 retries of /bin/false vs a bash loop running /bin/false
3. throughput: 512 MiB of stderr without a newline through a --retry-stderr rule vs a pipe
4. interval accuracy: 40 ticks at 50ms should end within 150ms of 2s
5. spawn strategies for the parent-death guarantee (why longrun uses a watcher process)
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PYTHON = sys.executable
# The console script a user runs, from the same environment as this interpreter.
LONGRUN = [str(Path(PYTHON).with_name("longrun"))]
MIB = 1024 * 1024


def wall(argv: Sequence[str], **kwargs: object) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=False, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - began


def median_interleaved(commands: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Alternate the contenders so machine noise hits them alike; report medians."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, measure in commands.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def startup(repeats: int) -> list[str]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    commands: dict[str, Callable[[], float]] = {
        "python -c 'import click, asyncio'": lambda: wall(
            [PYTHON, "-c", "import click, asyncio"], **quiet
        ),
        "longrun exec -- true": lambda: wall([*LONGRUN, "exec", "--", "true"], **quiet),
    }
    honcho = shutil.which("honcho", path=str(Path(PYTHON).parent)) or shutil.which("honcho")
    workdir = tempfile.mkdtemp()
    if honcho:
        Path(workdir, "Procfile").write_text("one: true\n")
        commands["honcho start (Procfile: one: true)"] = lambda: wall(
            [honcho, "start"], cwd=workdir, **quiet
        )
    result = median_interleaved(commands, repeats)
    floor = result["python -c 'import click, asyncio'"]
    lines = [
        f"{name:42s} {value * 1000:8.1f} ms  {value / floor:5.2f}x"
        for name, value in result.items()
    ]
    if not honcho:
        lines.append("honcho start: not installed (pip install -e '.[bench]')")
    lines.append(
        f"goal: longrun <= 1.20x the floor -> {result['longrun exec -- true'] / floor:.2f}x"
    )
    return lines


def attempts(repeats: int) -> list[str]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    retry = ["--retry-exit-code", "1:200:1ns,1ns,1"]
    commands: dict[str, Callable[[], float]] = {
        "bash 200": lambda: wall(
            ["bash", "-c", "for i in $(seq 200); do /bin/false; done"], **quiet
        ),
        "bash 0": lambda: wall(["bash", "-c", "for i in $(seq 0); do /bin/false; done"], **quiet),
        "longrun 201": lambda: wall([*LONGRUN, "exec", "-qq", *retry, "--", "/bin/false"], **quiet),
        "longrun 1": lambda: wall([*LONGRUN, "exec", "-qq", "--", "/bin/false"], **quiet),
    }
    result = median_interleaved(commands, repeats)
    bash = (result["bash 200"] - result["bash 0"]) / 200
    longrun = (result["longrun 201"] - result["longrun 1"]) / 200
    return [
        f"bash loop, per /bin/false                  {bash * 1000:8.3f} ms",
        f"longrun, per retried attempt               {longrun * 1000:8.3f} ms  "
        f"{longrun / bash:5.2f}x",
        f"goal: <= 2.00x -> {longrun / bash:.2f}x",
    ]


def traced_attempts(repeats: int) -> list[str]:
    """Per-attempt cost with every attempt traced to a live OTLP/HTTP receiver."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.integration.otlp import otlp_receiver

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    retry = ["--retry-exit-code", "1:200:1ns,1ns,1"]
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with otlp_receiver() as receiver:
        traced = {**plain, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}

        def run(env: dict[str, str], *extra: str) -> Callable[[], float]:
            argv = [*LONGRUN, "exec", "-qq", *extra, "--", "/bin/false"]
            return lambda: wall(argv, env=env, **quiet)

        result = median_interleaved(
            {
                "plain 201": run(plain, *retry),
                "plain 1": run(plain),
                "traced 201": run(traced, *retry),
                "traced 1": run(traced),
            },
            repeats,
        )
        spans = len(receiver.spans)
    plain_cost = (result["plain 201"] - result["plain 1"]) / 200
    traced_cost = (result["traced 201"] - result["traced 1"]) / 200
    startup = result["traced 1"] - result["plain 1"]
    return [
        f"per attempt, tracing off                   {plain_cost * 1000:8.3f} ms",
        f"per attempt, traced to a live receiver     {traced_cost * 1000:8.3f} ms  "
        f"{traced_cost / plain_cost:5.2f}x",
        f"extra start-up when tracing is on          {startup * 1000:8.1f} ms "
        f"(importing OpenTelemetry); spans received: {spans}",
    ]


def throughput(size_mib: int, repeats: int = 3) -> list[str]:
    """Median of interleaved runs: a plain pipe, then longrun copying through a rule."""
    size = size_mib * MIB
    producer = f"head -c {size} /dev/zero"
    rule = ["exec", "--retry-stderr", "connection refused", "--", "sh", "-c", f"{producer} >&2"]
    pipe_times: list[float] = []
    longrun_times: list[float] = []
    peak_kib = 0
    report = Path(tempfile.mkdtemp(), "peak")
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(["sh", "-c", f"{producer} | cat > /dev/null"], check=True)
        pipe_times.append(time.perf_counter() - began)
        # GNU time is a small C process: wait4 in this (bigger) Python process would
        # charge the vforked child with our own memory for the instant before exec.
        began = time.perf_counter()
        subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(report), *LONGRUN, *rule],
            stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        longrun_times.append(time.perf_counter() - began)
        peak_kib = max(peak_kib, int(report.read_text().split()[-1]))
    pipe_rate = size_mib / statistics.median(pipe_times)
    longrun_rate = size_mib / statistics.median(longrun_times)
    return [
        f"plain pipe (head | cat)                    {pipe_rate:8.0f} MiB/s",
        f"longrun --retry-stderr, no newline         {longrun_rate:8.0f} MiB/s  "
        f"{longrun_rate / pipe_rate:5.2f}x",
        f"longrun peak RSS (with its children)       {peak_kib / 1024:8.1f} MiB",
        f"goal: >= 0.50x and < 48 MiB -> {longrun_rate / pipe_rate:.2f}x, "
        f"{peak_kib / 1024:.1f} MiB",
    ]


def interval_accuracy() -> list[str]:
    with tempfile.TemporaryDirectory() as workdir:
        stamps = Path(workdir, "stamps")
        command = f'date +%s%N >> {stamps}; [ "$LONGRUN_RUN" -lt 41 ]'
        subprocess.run(
            [*LONGRUN, "exec", "-qq", "--interval", "50ms", "--", "sh", "-c", command], check=False
        )
        times = [int(line) / 1e9 for line in stamps.read_text().split()]
    span = times[-1] - times[0]
    return [
        f"runs: {len(times)}, first to 41st start: {span * 1000:.1f} ms (ideal 2000 ms)",
        f"goal: within 150 ms of 2s -> off by {abs(span - 2.0) * 1000:.1f} ms",
    ]


def spawn_strategies(count: int) -> list[str]:
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def pdeathsig() -> None:
        libc.prctl(pr_set_pdeathsig, 9, 0, 0, 0)

    def per_spawn(argv: list[str], **kwargs: object) -> float:
        began = time.perf_counter()
        for _ in range(count):
            subprocess.Popen(argv, **kwargs).wait()  # type: ignore[call-overload]
        return (time.perf_counter() - began) / count

    base = per_spawn(["/bin/false"], process_group=0)
    rows = [("process_group=0 (longrun: vfork kept)", base)]
    rows.append(("preexec_fn=prctl(PDEATHSIG)", per_spawn(["/bin/false"], preexec_fn=pdeathsig)))
    if shutil.which("setpriv"):
        rows.append(
            (
                "setpriv --pdeathsig KILL",
                per_spawn(["setpriv", "--pdeathsig", "KILL", "/bin/false"], process_group=0),
            )
        )
    return [f"{name:42s} {value * 1000:8.3f} ms  {value / base:5.2f}x" for name, value in rows]


def prepare() -> None:
    """Measure what users run: compiled bytecode, no PYTHONDONTWRITEBYTECODE."""
    import compileall

    import longrun_cli

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(longrun_cli.__file__).parent, quiet=1)
    if not Path(LONGRUN[0]).exists():
        sys.exit(f"{LONGRUN[0]} not found: install longrun into this environment first")


def main() -> None:
    prepare()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 64 MiB throughput")
    args = parser.parse_args()
    repeats = 5 if args.quick else 21
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("1. start-up (median wall time)", lambda: startup(repeats)),
        ("2. per-attempt overhead", lambda: attempts(max(3, repeats // 3))),
        ("3. stderr throughput", lambda: throughput(64 if args.quick else 512)),
        ("4. interval accuracy", interval_accuracy),
        ("5. spawn cost of parent-death strategies", lambda: spawn_strategies(200)),
        ("6. tracing overhead", lambda: traced_attempts(max(3, repeats // 3))),
    ]
    print(
        f"python {sys.version.split()[0]} on {os.uname().sysname} {os.uname().machine}, "
        f"{os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}"
    )
    for title, run in sections:
        print(f"\n{title}")
        for line in run():
            print("  " + line, flush=True)


if __name__ == "__main__":
    main()
