"""longrun beside the tools people use today, each row a ratio to the best in its section.

Run through ``benchmarks/run`` (it installs the peers). Peers that are not
installed are reported as missing, never silently skipped.
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

BIN = Path(sys.executable).parent
LONGRUN = str(BIN / "longrun")
HONCHO = shutil.which("honcho", path=str(BIN)) or shutil.which("honcho")
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
MIB = 1024 * 1024


def wall(argv: list[str], **kwargs: object) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=False, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - began


def medians(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def table(title: str, rows: dict[str, float], unit: str, lower_is_better: bool = True) -> list[str]:
    best = min(rows.values()) if lower_is_better else max(rows.values())
    lines = [f"### {title}", "", f"| tool | {unit} | ratio to best |", "|---|---|---|"]
    for name, value in rows.items():
        if best == 0 or value == 0:
            ratio = "1.00x" if value == best else "n/a (best is 0)"
        else:
            ratio = f"{value / best if lower_is_better else best / value:.2f}x"
        lines.append(f"| {name} | {value:.3f} | {ratio} |")
    return [*lines, ""]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def procfile_dir(lines: list[str]) -> str:
    directory = tempfile.mkdtemp()
    Path(directory, "Procfile").write_text("\n".join(lines) + "\n")
    return directory


def startup(repeats: int) -> list[str]:
    contenders: dict[str, Callable[[], float]] = {
        "longrun exec -- true": lambda: wall([LONGRUN, "exec", "--", "true"], **QUIET),
        "python -c 'import click, asyncio' (floor)": lambda: wall(
            [sys.executable, "-c", "import click, asyncio"], **QUIET
        ),
    }
    if have("timeout"):
        contenders["timeout 60 true"] = lambda: wall(["timeout", "60", "true"], **QUIET)
    if have("retry"):
        contenders["retry -t 1 -- true"] = lambda: wall(["retry", "-t", "1", "--", "true"], **QUIET)
    if have("tini"):
        contenders["tini -s -- true"] = lambda: wall(["tini", "-s", "--", "true"], **QUIET)
    if HONCHO:
        directory = procfile_dir(["one: true"])
        contenders["honcho start (one: true)"] = lambda: wall(
            [HONCHO, "start"], cwd=directory, **QUIET
        )
    rows = {name: value * 1000 for name, value in medians(contenders, repeats).items()}
    return table("Start-up of one wrapped `true` (median wall time)", rows, "ms")


def attempts(repeats: int) -> list[str]:
    def per_attempt(many: list[str], one: list[str]) -> Callable[[], float]:
        return lambda: (wall(many, **QUIET) - wall(one, **QUIET)) / 200

    contenders: dict[str, Callable[[], float]] = {
        # /bin/false everywhere: bash's builtin false would spawn nothing.
        "bash loop": per_attempt(
            ["bash", "-c", "for i in $(seq 200); do /bin/false; done"], ["bash", "-c", "true"]
        ),
        "longrun --retry-exit-code 1:200": per_attempt(
            [LONGRUN, "exec", "-qq", "--retry-exit-code", "1:200:1ns,1ns,1", "--", "/bin/false"],
            [LONGRUN, "exec", "-qq", "--", "/bin/false"],
        ),
    }
    if have("retry"):
        contenders["retry -t 200 -d 0"] = per_attempt(
            ["retry", "-t", "200", "-d", "0", "--", "/bin/false"],
            ["retry", "-t", "1", "-d", "0", "--", "/bin/false"],
        )
    rows = {name: value * 1000 for name, value in medians(contenders, repeats).items()}
    return table("Per-attempt overhead over 200 failing attempts", rows, "ms per attempt")


def throughput(repeats: int, size_mib: int = 512) -> list[str]:
    """Each tool's stderr goes through a pipe to ``cat``, as it would into a log collector."""
    producer = f"head -c {size_mib * MIB} /dev/zero"
    commands = {
        "plain pipe (no wrapper)": f"{producer} >&2",
        "longrun exec, no rule (inherited fd)": f"{LONGRUN} exec -- sh -c '{producer} >&2'",
        "longrun exec --retry-stderr": (
            f"{LONGRUN} exec --retry-stderr refused -- sh -c '{producer} >&2'"
        ),
    }
    if have("retry"):
        commands["retry -t 1"] = f"retry -t 1 -- sh -c '{producer} >&2'"
    honcho_dir = None
    if HONCHO:
        honcho_dir = procfile_dir([f"big: {producer} >&2"])
        commands["honcho start (one task)"] = f"cd {honcho_dir} && {HONCHO} start"

    def piped(command: str) -> list[str]:
        return ["sh", "-c", f"({command}) 2>&1 >/dev/null | cat >/dev/null"]

    def rate(command: str) -> Callable[[], float]:
        return lambda: size_mib / wall(piped(command))

    def peak_mib(command: str) -> float:
        # GNU time forks a tiny process: the peak is the command's, not ours.
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *piped(command)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return int(result.stderr.strip().splitlines()[-1]) / 1024

    rates = medians({name: rate(cmd) for name, cmd in commands.items()}, repeats)
    memory = {name: peak_mib(cmd) for name, cmd in commands.items()}
    lines = table(
        f"stderr pass-through into a pipe, {size_mib} MiB without a newline",
        rates,
        "MiB/s",
        lower_is_better=False,
    )
    lines += table("Peak memory of the same runs (largest process of the tree)", memory, "MiB")
    return lines


def cancel_all() -> list[str]:
    lines_ = [f"s{i}: sleep 60" for i in range(200)] + ["fail: sleep 2; exit 3"]
    directory = procfile_dir(lines_)
    contenders = {"longrun group --procfile": [LONGRUN, "group", "--procfile", "Procfile"]}
    if HONCHO:
        contenders["honcho start"] = [HONCHO, "start"]
    rows = {name: wall(argv, cwd=directory, **QUIET) for name, argv in contenders.items()}
    subprocess.run(["pkill", "-f", "sleep 60"], check=False)
    return table("200 tasks plus one failing after 2 s: start to cancel-all (wall)", rows, "s")


def idle_cpu(seconds: float = 10.0) -> list[str]:
    directory = procfile_dir([f"t{i}: sleep 600" for i in range(50)])
    contenders = {"longrun group --procfile": [LONGRUN, "group", "--procfile", "Procfile"]}
    if HONCHO:
        contenders["honcho start"] = [HONCHO, "start"]
    rows: dict[str, float] = {}
    for name, argv in contenders.items():
        proc = subprocess.Popen(argv, cwd=directory, **QUIET)  # type: ignore[call-overload]
        time.sleep(3)
        before = _cpu_seconds(proc.pid)
        time.sleep(seconds)
        rows[name] = (_cpu_seconds(proc.pid) - before) * 1000 / seconds
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    subprocess.run(["pkill", "-f", "sleep 600"], check=False)
    return table(f"Idle CPU of a 50-task group over {seconds:g} s", rows, "ms CPU per s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interval_drift() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        stamps = Path(directory, "stamps")
        command = f'date +%s%N >> {stamps}; [ "$LONGRUN_RUN" -lt 1001 ]'
        subprocess.run(
            [LONGRUN, "exec", "-qq", "--interval", "10ms", "--", "sh", "-c", command], check=False
        )
        times = [int(line) / 1e9 for line in stamps.read_text().split()]
    span = times[-1] - times[0]
    return [
        "### Interval drift, 1000 ticks at 10 ms (longrun only: the peers have no intervals)",
        "",
        f"first to 1001st start: {span * 1000:.1f} ms for an ideal 10000 ms "
        f"(drift {(span - 10) * 1000:+.1f} ms, {len(times)} runs)",
        "",
    ]


ANALYSIS = """
## Where longrun is behind, and why

- **Start-up** (vs `retry`, `tini`, `timeout`, written in C): the gap is the
  Python interpreter with click and asyncio, the floor row. longrun stays within
  about 1.2x of that floor (`benchmarks/exec_bench.py` measures it precisely);
  profiling showed its own share to be imports of its modules (~11-19 ms with
  byte-code compiled), one `sh` watcher spawn (parent-death guarantee), the event
  loop and signal set-up. Closing the rest would need a compiled launcher.
- **Per attempt** (vs `retry`): `fork`+`exec` through `subprocess.Popen` (vfork
  kept, ~0.6 ms) plus one event-loop round trip for SIGCHLD; `retry` has neither
  an event loop nor a process group, a parent-death watcher, or stream matching.
  Earlier profiles removed what was not inherent: a task per wait, asyncio's
  `add_signal_handler` rebuilding `signal.valid_signals()` on every call, a
  per-child `waitpid` loop, and copying the environment per attempt.
- **Pass-through without a rule**: the descriptor is inherited, nothing is
  copied; the lower rate is longrun's start-up spread over the transfer.
- **Pass-through with a rule**: one extra copy through user space in a thread
  (1 MiB pipe, RE2 search on 256 KiB windows); memory stays flat whatever the
  line length. honcho buffers a whole line: 512 MiB without a newline cost it
  about 2 GiB.
- **Memory**: a Python process with asyncio is ~20 MiB before longrun does
  anything; the C tools need under 2 MiB.
"""


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    import longrun_cli

    compileall.compile_dir(Path(longrun_cli.__file__).parent, quiet=1)
    missing = [tool for tool in ("timeout", "retry", "tini") if not have(tool)]
    if not HONCHO:
        missing.append("honcho")
    missing.append("process-compose (not packaged in Debian or PyPI)")
    uname = os.uname()
    lines = [
        "# longrun beside its peers",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {uname.sysname} {uname.machine}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, by `bash benchmarks/run`. "
        "Each section's rows ran interleaved in one run; medians; ratio to the best row.",
        "",
        f"Peers not measured: {', '.join(missing)}.",
        "",
    ]
    lines += startup(7)
    lines += attempts(7)
    lines += throughput(3)
    lines += cancel_all()
    lines += idle_cpu()
    lines += interval_drift()
    lines += ANALYSIS.splitlines()
    text = "\n".join(lines) + "\n"
    print(text)
    if "--write" in sys.argv:
        Path(__file__).resolve().parent.parent.joinpath("docs", "benchmarks.md").write_text(text)


if __name__ == "__main__":
    main()
