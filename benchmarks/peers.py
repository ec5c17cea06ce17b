"""longrun beside the tools people use today, each row a ratio to the best in its section.

Run through ``benchmarks/run`` (it installs the peers). Peers that are not
installed are reported as missing, never silently skipped.
"""

from __future__ import annotations

import contextlib
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
SUPERVISORD = shutil.which("supervisord", path=str(BIN)) or shutil.which("supervisord")
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


def supervisord_conf(programs: dict[str, str], log: str = "/dev/null", **program: str) -> str:
    """A foreground supervisord config running ``programs`` once each (no restarts).

    supervisord never exits on its own: where a run must end, the program sends
    supervisord SIGTERM itself (``kill -TERM $PPID``), supervisord's own way to stop.
    """
    directory = tempfile.mkdtemp()
    settings = {
        "startsecs": "0",
        "autorestart": "false",
        "stdout_logfile": "NONE",
        "stderr_logfile": "NONE",
        **program,
    }
    lines = [
        "[supervisord]",
        "nodaemon=true",
        "user=root" if os.geteuid() == 0 else "",
        f"logfile={log}",
        "logfile_maxbytes=0",
        f"pidfile={directory}/supervisord.pid",
        "loglevel=info" if log != "/dev/null" else "loglevel=warn",
    ]
    for name, command in programs.items():
        lines += ["", f"[program:{name}]", f"command={command}"]
        lines += [f"{key}={value}" for key, value in settings.items()]
    path = Path(directory, "supervisord.conf")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def startup(repeats: int) -> list[str]:
    commands: dict[str, tuple[list[str], str | None]] = {
        "longrun exec -- true": ([LONGRUN, "exec", "--", "true"], None),
        "python -c 'import click, asyncio' (floor)": (
            [sys.executable, "-c", "import click, asyncio"],
            None,
        ),
    }
    if have("timeout"):
        commands["timeout 60 true"] = (["timeout", "60", "true"], None)
    if have("retry"):
        commands["retry -t 1 -- true"] = (["retry", "-t", "1", "--", "true"], None)
    if have("tini"):
        commands["tini -s -- true"] = (["tini", "-s", "--", "true"], None)
    if HONCHO:
        commands["honcho start (one: true)"] = ([HONCHO, "start"], procfile_dir(["one: true"]))
    if SUPERVISORD:
        conf = supervisord_conf({"one": "/bin/sh -c 'kill -TERM $PPID'"})
        commands["supervisord (one program that stops it)"] = ([SUPERVISORD, "-c", conf], None)

    def timed(argv: list[str], cwd: str | None) -> Callable[[], float]:
        return lambda: wall(argv, cwd=cwd, **QUIET)

    contenders = {name: timed(argv, cwd) for name, (argv, cwd) in commands.items()}
    rows = {name: value * 1000 for name, value in medians(contenders, repeats).items()}
    lines = table("Start-up of one wrapped `true` (median wall time)", rows, "ms")
    if have("valgrind"):
        counts = {name: _instructions(argv, cwd) for name, (argv, cwd) in commands.items()}
        lines += table(
            "Start-up in instructions, every process of the run (callgrind: the same on a "
            "busy machine)",
            {name: count / 1e6 for name, count in counts.items()},
            "million instructions",
        )
    return lines


def _instructions(argv: list[str], cwd: str | None) -> float:
    """Instructions one run executes in all its processes, counted by valgrind.

    Children count too: honcho does its work in forked processes, longrun starts
    a watcher, and every tool runs `true`.
    """
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         "--callgrind-out-file=/dev/null", *argv],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if "Collected :" in line]
    counts = [float(line.rsplit(":", 1)[1]) for line in lines]
    return sum(counts) if counts else float("nan")


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
    if SUPERVISORD:
        rows["supervisord autorestart (10 attempts, from its log)"] = _supervisord_attempt() * 1000
    return table("Per-attempt overhead over 200 failing attempts", rows, "ms per attempt")


def _supervisord_attempt(count: int = 10) -> float:
    """Seconds between restarts of a failing program, from supervisord's own log stamps.

    supervisord restarts on its one-second loop tick, so 200 attempts would take
    over three minutes: ``count`` of them show the cadence.
    """
    log = Path(tempfile.mkdtemp(), "supervisord.log")
    conf = supervisord_conf({"fail": "/bin/false"}, log=str(log), autorestart="true")
    proc = subprocess.Popen([SUPERVISORD, "-c", conf], **QUIET)  # type: ignore[call-overload]
    stamps: list[float] = []
    limit = time.monotonic() + count * 3 + 10
    while len(stamps) < count and time.monotonic() < limit:
        time.sleep(0.2)
        lines = log.read_text().splitlines() if log.exists() else []
        stamps = [_log_stamp(line) for line in lines if "exited: fail" in line]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    if len(stamps) < 2:
        return float("nan")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def _log_stamp(line: str) -> float:
    """``2026-11-28 11:25:05,444 WARN ...`` → seconds since the epoch."""
    stamp, millis = line[:23].split(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


def throughput(repeats: int, size_mib: int = 512) -> list[str]:
    """Each tool's stderr goes through a pipe to ``cat``, as it would into a log collector.

    The net rate takes away each tool's own run with nothing to copy, so start-up
    (a second for supervisord's loop tick) does not hide the copying cost.
    """

    def commands(nbytes: int) -> dict[str, str]:
        producer = f"head -c {nbytes} /dev/zero"
        found = {
            "plain pipe (no wrapper)": f"{producer} >&2",
            "longrun exec, no rule (inherited fd)": f"{LONGRUN} exec -- sh -c '{producer} >&2'",
            "longrun exec --retry-stderr": (
                f"{LONGRUN} exec --retry-stderr refused -- sh -c '{producer} >&2'"
            ),
        }
        if have("retry"):
            found["retry -t 1"] = f"retry -t 1 -- sh -c '{producer} >&2'"
        if HONCHO:
            directory = procfile_dir([f"big: {producer} >&2"])
            found["honcho start (one task)"] = f"cd {directory} && {HONCHO} start"
        if SUPERVISORD:
            conf = supervisord_conf(
                {"big": f"/bin/sh -c '{producer} >&2; kill -TERM $PPID'"},
                stderr_logfile="/dev/stderr",
                stderr_logfile_maxbytes="0",
            )
            found["supervisord (stderr_logfile=/dev/stderr)"] = f"{SUPERVISORD} -c {conf}"
        return found

    def piped(command: str) -> list[str]:
        return ["sh", "-c", f"({command}) 2>&1 >/dev/null | cat >/dev/null"]

    def peak_mib(command: str) -> float:
        # GNU time forks a tiny process: the peak is the command's, not ours.
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *piped(command)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return int(result.stderr.strip().splitlines()[-1]) / 1024

    def timed(command: str) -> Callable[[], float]:
        return lambda: wall(piped(command))

    full, empty = commands(size_mib * MIB), commands(0)
    walls = medians({name: timed(command) for name, command in full.items()}, repeats)
    idle = medians({name: timed(command) for name, command in empty.items()}, repeats)
    gross = {name: size_mib / seconds for name, seconds in walls.items()}
    net = {name: size_mib / max(walls[name] - idle[name], 1e-6) for name in walls}
    memory = {name: peak_mib(cmd) for name, cmd in full.items()}
    title = f"stderr pass-through into a pipe, {size_mib} MiB without a newline"
    lines = table(f"{title} (wall time, start-up included)", gross, "MiB/s", lower_is_better=False)
    lines += table(
        f"{title} (net: minus the same run with 0 bytes)", net, "MiB/s", lower_is_better=False
    )
    lines += table("Peak memory of the same runs (largest process of the tree)", memory, "MiB")
    return lines


def cancel_all(repeats: int = 3) -> list[str]:
    lines_ = [f"s{i}: sleep 60" for i in range(200)] + ["fail: sleep 2; exit 3"]
    directory = procfile_dir(lines_)
    contenders = {"longrun group --procfile": [LONGRUN, "group", "--procfile", "Procfile"]}
    if HONCHO:
        contenders["honcho start"] = [HONCHO, "start"]
    if SUPERVISORD:
        # supervisord does not stop the others when one fails: the failing program
        # asks it to (SIGTERM), which is as close as it comes.
        programs = {f"s{i}": "sleep 60" for i in range(200)}
        programs["fail"] = "/bin/sh -c 'sleep 2; kill -TERM $PPID'"
        conf = supervisord_conf(programs)
        contenders["supervisord (failing program stops it)"] = [SUPERVISORD, "-c", conf]

    left: dict[str, int] = {}

    def timed(name: str, argv: list[str]) -> Callable[[], float]:
        def once() -> float:
            seconds = wall(argv, cwd=directory, **QUIET)
            found = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, check=False)
            left[name] = max(left.get(name, 0), len(found.stdout.split()))
            # Whatever a tool left behind must not load the next one's run.
            subprocess.run(["pkill", "-f", "sleep 60"], check=False)
            return seconds

        return once

    rows = medians({name: timed(name, argv) for name, argv in contenders.items()}, repeats)
    title = f"200 tasks plus one failing after 2 s: start to cancel-all (wall, median of {repeats})"
    leftovers = ", ".join(f"{name} {count}" for name, count in left.items())
    note = f"Processes still running once each tool exited (most in any run): {leftovers}."
    return [*table(title, rows, "s"), note, ""]


def idle_cpu(seconds: float = 10.0, windows: int = 3) -> list[str]:
    directory = procfile_dir([f"t{i}: sleep 600" for i in range(50)])
    contenders = {"longrun group --procfile": [LONGRUN, "group", "--procfile", "Procfile"]}
    if HONCHO:
        contenders["honcho start"] = [HONCHO, "start"]
    if SUPERVISORD:
        conf = supervisord_conf({f"t{i}": "sleep 600" for i in range(50)})
        contenders["supervisord"] = [SUPERVISORD, "-c", conf]
    rows: dict[str, float] = {}
    for name, argv in contenders.items():
        proc = subprocess.Popen(argv, cwd=directory, **QUIET)  # type: ignore[call-overload]
        time.sleep(3)
        rates = []
        for _ in range(windows):
            before = _cpu_seconds(proc.pid)
            time.sleep(seconds)
            rates.append((_cpu_seconds(proc.pid) - before) * 1000 / seconds)
        rows[name] = statistics.median(rates)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        subprocess.run(["pkill", "-f", "sleep 600"], check=False)
    title = f"Idle CPU of a 50-task group (median of {windows} windows of {seconds:g} s)"
    return table(title, rows, "ms CPU per s")


def _cpu_seconds(pid: int) -> float:
    """CPU time the process has run, from the scheduler's nanosecond count."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def interval_drift() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        stamps = Path(directory, "stamps")
        command = f'date +%s%N >> {stamps}; [ "$LONGRUN_RUN" -lt 1001 ]'
        subprocess.run(
            [LONGRUN, "exec", "-qq", "--interval", "10ms", "--", "sh", "-c", command], check=False
        )
        times = [int(line) / 1e9 for line in stamps.read_text().split()]
    span = times[-1] - times[0]
    # Lateness of each start against the ideal grid laid from the first one.
    late = [(stamp - times[0] - index * 0.010) * 1000 for index, stamp in enumerate(times)]
    return [
        "### Interval drift, 1000 ticks at 10 ms (longrun only: the peers have no intervals)",
        "",
        f"first to 1001st start: {span * 1000:.1f} ms for an ideal 10000 ms "
        f"(drift {(span - 10) * 1000:+.1f} ms, {len(times)} runs); each start against the "
        f"ideal grid: median {statistics.median(late):+.2f} ms, "
        f"worst {max(late):+.2f} ms, earliest {min(late):+.2f} ms.",
        "",
    ]


ANALYSIS = """
## How the peers were run

- `timeout`, `retry` (Debian's), `tini`: as wrappers of the same command.
- honcho: a Procfile in a temporary directory, `honcho start`.
- supervisord (PyPI `supervisor`): a generated config, `nodaemon=true`, each
  program `startsecs=0` and `autorestart=false`. supervisord never exits on its
  own and never stops the others when one program fails, so where a run must end
  the program sends supervisord SIGTERM itself (`kill -TERM $PPID`) — for the
  cancel-all row that is the nearest thing it has. Its per-attempt row restarts
  `/bin/false` with `autorestart=true` and reads the gaps from supervisord's own
  millisecond log stamps over 10 attempts (200 would take over three minutes).
- process-compose: a Go binary not packaged in Debian or on PyPI, so not
  installable here; it is listed as not measured rather than guessed at.

## Where longrun is behind, and why

- **Start-up** (vs `retry`, `tini`, `timeout`, written in C): the gap is the
  Python interpreter with click and asyncio, the floor row. longrun stays within
  about 1.2x of that floor (`benchmarks/exec_bench.py` measures it precisely);
  profiling (`-X importtime`, cProfile) showed its own share to be imports of its
  modules (~10 ms with byte-code compiled), one `sh` watcher spawn (the
  parent-death guarantee), the event loop and signal set-up. Closing the rest
  would need a compiled launcher. supervisord's second is its main loop's
  one-second tick before it spawns anything. Wall times on a shared machine move
  from run to run; the instruction counts do not, and give the same picture.
- **Per attempt** (vs `retry`): `fork`+`exec` through `subprocess.Popen` (vfork
  kept, ~0.6 ms) plus one event-loop round trip for SIGCHLD; `retry` has neither
  an event loop nor a process group, a parent-death watcher, or stream matching.
  Earlier profiles removed what was not inherent: a task per wait, asyncio's
  `add_signal_handler` rebuilding `signal.valid_signals()` on every call, a
  per-child `waitpid` loop, and copying the environment per attempt.
  supervisord restarts a failed program once per loop tick (~1 s): it is built
  to keep services up, not to retry jobs quickly.
- **Pass-through without a rule**: the descriptor is inherited, nothing is
  copied; the lower wall-time rate is longrun's start-up spread over the
  transfer, and the net table (start-up taken away) shows it. A net rate
  subtracts two noisy medians, so rows within ~20% of each other are level: one
  run even put the inherited descriptor above the plain pipe.
- **Pass-through with a rule**: the bytes cross two pipes instead of one: read
  into longrun (a thread, 1 MiB reads from a 1 MiB pipe) and written out again.
  The matching is not the cost: RE2 searches the 256 KiB windows at over 20 GB/s
  here. supervisord, which copies the same way in 64 KiB reads, lands at the same
  rate (net 1.2-1.8x below the plain pipe across runs; longrun 1.3-1.7x).
  `splice` could move the bytes without a copy, but matching needs them in user
  space anyway. Memory stays flat whatever the line length. honcho buffers a
  whole line: 512 MiB without a newline cost it about 2 GiB.
- **Memory**: a Python process with asyncio is ~20 MiB before longrun does
  anything, as for supervisord; the C tools need under 2 MiB.
"""


def versions() -> str:
    """What was measured: package versions of longrun and each peer found."""
    import longrun_cli

    found = [f"longrun {longrun_cli.__version__}"]
    for package, tool in (("coreutils", "timeout"), ("retry", "retry"), ("tini", "tini")):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0 and result.stdout:
            found.append(f"{tool} ({package} {result.stdout})")
    for program in (HONCHO, SUPERVISORD):
        if program:
            result = subprocess.run(
                [program, "--version"], capture_output=True, text=True, check=False
            )
            text = (result.stdout or result.stderr).strip().splitlines()
            found.append(f"{Path(program).name} {text[-1].split()[-1] if text else '?'}")
    return ", ".join(found)


def machine() -> str:
    uname = os.uname()
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{uname.sysname} {uname.release} {uname.machine}, {model}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}"
    )


REPRODUCE = """
## Reproduce

```sh
bash benchmarks/run          # as root on Debian: installs retry, tini, valgrind with apt-get
```

It creates `.venv-bench` with longrun and the `bench` extra (honcho, supervisor),
compiles longrun's byte-code (a machine with `PYTHONDONTWRITEBYTECODE=1` would
otherwise compile it on every start), runs every section and rewrites this file.
It takes about four minutes on 2 cores. The machine is best left idle meanwhile:
each section's contenders are interleaved so that noise hits them alike, but the
absolute numbers still move with the load (the ratios much less).
"""


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    import longrun_cli

    compileall.compile_dir(Path(longrun_cli.__file__).parent, quiet=1)
    missing = [tool for tool in ("timeout", "retry", "tini") if not have(tool)]
    if not HONCHO:
        missing.append("honcho")
    if not SUPERVISORD:
        missing.append("supervisord")
    missing.append("process-compose (not packaged in Debian or PyPI)")
    lines = [
        "# longrun beside its peers",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, by `bash benchmarks/run`. "
        "Each section's rows ran interleaved in one run; medians; ratio to the best row.",
        "",
        f"Versions: {versions()}.",
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
    lines += REPRODUCE.splitlines()
    text = "\n".join(lines) + "\n"
    print(text)
    if "--write" in sys.argv:
        Path(__file__).resolve().parent.parent.joinpath("docs", "benchmarks.md").write_text(text)


if __name__ == "__main__":
    main()
