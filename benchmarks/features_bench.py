"""What issue 14's features cost, each beside its reference in the same run.

Run: .venv/bin/python benchmarks/features_bench.py [--write]   (docs/features-benchmarks.md)

1. Per attempt with ``--state-file`` (a JSON save with fsync, rename and a
   directory fsync after every failure) vs without (goal <= 1.5x).
2. Per attempt with metrics on (``OTEL_METRICS_EXPORTER=otlp`` to a live receiver)
   vs off (goal <= 1.3x).
3. ``longrun exec -- true`` start-up in instructions (callgrind, every process):
   this tree vs the tree before issue 14's second half (``BASE``, a git revision)
   vs the ``python -c 'import click, asyncio'`` floor (goal: unchanged, <= 1.15x).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ctl_bench import instructions  # noqa: E402
from tests.integration.otlp import otlp_receiver  # noqa: E402

PYTHON = sys.executable
LONGRUN = str(Path(PYTHON).with_name("longrun"))
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
RETRIES = (
    1000  # many: a run's fixed costs (importing the SDK) vary by more than 200 attempts' worth
)
BASE = os.environ.get("BASE", "60db85c")  # main before probes, state file and metrics


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=False, env=env, **QUIET)  # type: ignore[call-overload]
    return time.perf_counter() - began


def interleaved(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def per_attempt(env: dict[str, str], *extra: str) -> dict[str, Callable[[], float]]:
    """The cost of RETRIES more failing attempts: the difference of two runs."""
    many = [LONGRUN, "exec", "-qq", f"--retry-exit-code=1:{RETRIES}:1ns,1ns,1", *extra]
    return {
        "many": lambda: wall([*many, "--", "/bin/false"], env),
        "one": lambda: wall([LONGRUN, "exec", "-qq", *extra, "--", "/bin/false"], env),
    }


def cost(result: dict[str, float], prefix: str) -> float:
    return (result[f"{prefix} many"] - result[f"{prefix} one"]) / RETRIES


def state_file(repeats: int) -> list[str]:
    # On the disk the checkout is on (not a tmpfs), so every fsync reaches it.
    directory = Path(tempfile.mkdtemp(prefix="lr-state-", dir=ROOT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    try:
        state = str(directory / "state.json")
        contenders = {f"plain {k}": v for k, v in per_attempt(env).items()} | {
            f"state {k}": v for k, v in per_attempt(env, f"--state-file={state}").items()
        }

        def fresh(measure: Callable[[], float]) -> Callable[[], float]:
            def run() -> float:
                Path(state).unlink(missing_ok=True)  # each run starts from no state
                return measure()

            return run

        result = interleaved({name: fresh(m) for name, m in contenders.items()}, repeats)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    plain, saved = cost(result, "plain"), cost(result, "state")
    return [
        "### Per attempt with `--state-file` (fsync included)",
        "",
        f"- without: {plain * 1000:.3f} ms per failing attempt",
        f"- with `--state-file` on {ROOT.anchor}: {saved * 1000:.3f} ms: "
        f"**{saved / plain:.2f}x** (goal <= 1.5x)",
        "",
    ]


def metrics(repeats: int) -> list[str]:
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with otlp_receiver() as receiver:
        metered = {
            **plain,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_EXPORTER": "none",
        }
        contenders = {f"off {k}": v for k, v in per_attempt(plain).items()} | {
            f"on {k}": v for k, v in per_attempt(metered).items()
        }
        result = interleaved(contenders, repeats)
        points = len(receiver.points)
    off, on = cost(result, "off"), cost(result, "on")
    startup = result["on one"] - result["off one"]  # the SDK imported, once per run
    return [
        "### Per attempt with metrics on",
        "",
        f"- off: {off * 1000:.3f} ms per failing attempt",
        f"- on (`OTEL_METRICS_EXPORTER=otlp` to a live receiver): {on * 1000:.3f} ms: "
        f"**{on / off:.2f}x** (goal <= 1.3x)",
        f"- once per run, importing the SDK's metrics and exporting: {startup * 1000:.0f} ms "
        f"({points} data points received)",
        "",
    ]


def startup() -> list[str]:
    if not shutil.which("valgrind"):
        return ["### Start-up: valgrind not installed", ""]
    base = Path(tempfile.mkdtemp(prefix="lr-base-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), BASE],
                   check=True, **QUIET)  # fmt: skip
    try:
        import compileall

        compileall.compile_dir(base / "longrun_cli", quiet=1)
        compileall.compile_dir(ROOT / "longrun_cli", quiet=1)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def ours(tree: Path) -> float:
            command = [PYTHON, "-m", "longrun_cli", "exec", "--", "true"]
            return instructions(command, {**env, "PYTHONPATH": str(tree)})

        floor = instructions([PYTHON, "-c", "import click, asyncio"], env)
        now, before = ours(ROOT), ours(base)
        installed = instructions([LONGRUN, "exec", "--", "true"], env)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       check=False, **QUIET)  # fmt: skip
    return [
        "### `longrun exec -- true` start-up (instructions, every process)",
        "",
        f"- `python -c 'import click, asyncio'`: {floor:.1f} M",
        f"- `python -m longrun_cli exec -- true` before (`{BASE}`): {before:.1f} M; now: "
        f"{now:.1f} M: **{now / before:.3f}x** before",
        f"- the installed `longrun exec -- true` now: {installed:.1f} M: "
        f"**{installed / floor:.3f}x** the floor (goal <= 1.15x)",
        "",
    ]


def main() -> None:
    repeats = 3 if "--quick" in sys.argv else 9
    lines = [
        "# What probes, the state file and metrics cost",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/features_bench.py --write` "
        f"({os.cpu_count()} cpus); every ratio is against a reference measured in the same run, "
        f"each a median of {repeats} interleaved runs of {RETRIES} failing attempts.",
        "",
    ]
    lines += state_file(repeats)
    lines += metrics(repeats)
    lines += startup()
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        (ROOT / "docs" / "features-benchmarks.md").write_text(text)


if __name__ == "__main__":
    main()
