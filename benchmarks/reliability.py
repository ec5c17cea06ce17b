"""Fault injection with real processes: the figures of docs/reliability.md.

Run: .venv/bin/python benchmarks/reliability.py [--kills N] [--out docs/reliability-figures.md]

- SIGKILL of longrun at random moments across exec, --foreground, a 100-task group
  starting, a readiness probe and setsid daemons (nested): marked processes left;
- pid reuse forced with ns_last_pid in a private pid namespace: does longrun still
  end on TERM;
- a 510-task group under ulimit -Sn 1024; a 60-task group under ulimit -u 40 as
  an unprivileged user (one clear line, nothing left);
- a progress bar (70 KB without a newline, then a pause) beside a task printing a
  line every 50 ms: how late its lines reach longrun's stdout;
- /dev/full as the destination of a group and of exec's matched stderr: statuses;
- a 2,000-task group: threads and peak RSS of longrun.

Every leftover is counted by a marker this script puts in longrun's environment.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONGRUN = [sys.executable, "-m", "longrun_cli"]
MARK = "RELIABILITY_MARK"  # set by this script (and the fault tests), never by longrun
NESTED = "setsid sh -c 'setsid sleep 300 & sleep 300' & (setsid sh -c '(setsid sleep 300 &); sleep 300' &); sleep 300"


def marked_env(**extra: str) -> tuple[dict[str, str], str]:
    """longrun's environment with a fresh marker every descendant inherits, and the marker."""
    mark = uuid.uuid4().hex
    return {**os.environ, MARK: mark, **extra}, mark


def marked_pids(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark`` (zombies excluded)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def settle(mark: str, timeout: float = 5.0) -> tuple[list[int], float]:
    """(processes still there after ``timeout``, then killed; seconds until none was left)."""
    began = time.monotonic()
    while (left := marked_pids(mark)) and time.monotonic() - began < timeout:
        time.sleep(0.02)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left, time.monotonic() - began


def kill_cases(tmp: Path) -> dict[str, list[str]]:
    probe = tmp / "probe.toml"
    probe.write_text(
        '[tasks.web]\ncommand = "sleep 300"\n'
        'ready = { command = "sleep 300", interval = "50ms", timeout = "60s" }\n'
    )
    return {
        "exec": ["exec", "--", "sh", "-c", "sleep 300 & sleep 300"],
        "exec --foreground": ["exec", "--foreground", "--", "sh", "-c", "sleep 300 & sleep 300"],
        "group of 100, starting": [
            "group",
            *[arg for i in range(100) for arg in ("-t", f"t{i}=sleep 300")],
        ],
        "group with a probe": ["group", str(probe)],
        "setsid daemons, nested": ["exec", "--", "sh", "-c", NESTED],
    }


def random_kills(kills: int, tmp: Path) -> list[tuple[str, int, int, float]]:
    cases = kill_cases(tmp)
    per_case = max(1, kills // len(cases))
    rows = []
    for name, args in cases.items():
        left_total, settle_times = 0, []
        for _ in range(per_case):
            env, mark = marked_env()
            proc = subprocess.Popen(
                [*LONGRUN, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(random.uniform(0.0, 0.8))
            proc.kill()
            proc.wait()
            left, took = settle(mark)
            left_total += len(left)
            settle_times.append(took)
        rows.append((name, per_case, left_total, max(settle_times)))
    return rows


def pid_reuse_group(held: Path, pids: Path, turn: Path) -> str:
    """A group in which another task's attempt gets the pid of a held, exited command.

    a: exits at once, its stdout and stderr held by a daemon for 1 s of grace each.
    c: once a has gone, makes a's pid the next one handed out (no fork after that).
    b: ticks every 200 ms; the attempt after c's turn gets a's pid and runs 5 s,
    so a's release (after its grace) comes while b's attempt still runs.
    Needs a private pid namespace (unshare -fp --mount-proc) and root.
    """
    return f"""
[runner]
kill_after = "1s"
[tasks.a]
command = ["sh", "-c", "setsid sleep 30 & echo $$ > {held}; exit 0"]
[tasks.b]
command = ["sh", "-c", "echo $$ >> {pids}; if [ -e {turn} ] && [ ! -e {turn}.slept ]; then : > {turn}.slept; exec sleep 5; fi"]
interval = "200ms"
[tasks.c]
command = ["sh", "-c", "while [ ! -s {held} ]; do sleep 0.05; done; sleep 0.3; last=$(( $(cat {held}) - 1 )); : > {turn}; echo $last > /proc/sys/kernel/ns_last_pid; exec sleep 30"]
"""


def pid_reuse(tmp: Path) -> str:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "not measured (needs root and unshare)"
    held, pids, turn = tmp / "held.pid", tmp / "b.pids", tmp / "turn"
    config = tmp / "reuse.toml"
    config.write_text(pid_reuse_group(held, pids, turn))
    proc = subprocess.Popen(
        ["unshare", "--fork", "--pid", "--mount-proc", *LONGRUN, "group", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not (held.exists() and pids.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        target = int(held.read_text())
        while target not in _ints(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        reused = target in _ints(pids)
        time.sleep(6)
        inner = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        began = time.monotonic()
        os.kill(inner, signal.SIGTERM)
        proc.wait(timeout=30)
        return (
            f"pid {target} reused by another task's attempt: {'yes' if reused else 'no'}; "
            f"longrun ended {time.monotonic() - began:.2f} s after TERM"
        )
    except subprocess.TimeoutExpired:
        return "HUNG: longrun did not end within 30 s of TERM"
    finally:
        proc.kill()


def _ints(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def fd_limit_group() -> str:
    tasks = [arg for i in range(510) for arg in ("-t", f"t{i}=sleep 2")]
    began = time.monotonic()
    result = subprocess.run(
        ["sh", "-c", 'ulimit -Sn 1024 && exec "$@"', "sh", *LONGRUN, "group", "-q", *tasks],
        capture_output=True,
        check=False,
    )
    return f"exit {result.returncode} in {time.monotonic() - began:.1f} s"


def process_limit_group() -> str:
    system = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not system.exists() or shutil.which("setpriv") is None:
        return "not measured (needs root, setpriv and /usr/bin/python3)"
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env, mark = marked_env(PYTHONPATH=f"{site}:{ROOT}")
    tasks = " ".join(f"-t t{i}='sleep 30'" for i in range(60))
    result = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "bash", "-c",
         f"ulimit -u 40 && cd / && exec /usr/bin/python3 -m longrun_cli group {tasks}"],
        capture_output=True, env=env, check=False,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if b"limit" in line][:1]
    left = len(settle(mark)[0])
    traceback = b"Traceback" in result.stderr
    return (
        f"exit {result.returncode}, traceback: {'yes' if traceback else 'no'}, left: {left}; "
        f"first error: {errors[0].decode() if errors else '-'}"
    )


def progress_bar_latency() -> tuple[float, float, int]:
    """Median and worst lateness (ms) of the line task's lines, and how many arrived."""
    bar = "head -c 70000 /dev/zero | tr '\\0' '#'; sleep 3; echo"
    ticker = (
        f'{sys.executable} -u -c "import time\nfor i in range(40):\n'
        f"    print('tick', time.time(), flush=True); time.sleep(0.05)\""
    )
    proc = subprocess.Popen(
        [*LONGRUN, "group", "-t", f"bar={bar}", "-t", f"ticker={ticker}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    late = []
    for line in proc.stdout:
        arrived = time.time()
        if b"tick " in line:
            late.append((arrived - float(line.split()[-1])) * 1000)
    proc.wait()
    return statistics.median(late), max(late), len(late)


def full_disk() -> list[tuple[str, int]]:
    rows = []
    with open("/dev/full", "w") as full:
        group = subprocess.run(
            [*LONGRUN, "group", "-t", "a=sh -c 'echo x; sleep 0.3; echo y'", "-t", "b=sh -c 'sleep 0.6'"],
            stdout=full, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        rows.append(("group, stdout on /dev/full (expect 0)", group.returncode))
        matched = subprocess.run(
            [*LONGRUN, "exec", "--retry-stderr", "never", "--", "sh", "-c", "echo e >&2; exit 7"],
            stderr=full, check=False,
        )  # fmt: skip
        rows.append(("exec with a stderr rule, stderr on /dev/full (expect 7)", matched.returncode))
    return rows


def big_group(tasks: int) -> tuple[int, float, float]:
    """Most threads seen in longrun, its peak RSS (MiB), and the wall time to cancel-all."""
    with tempfile.TemporaryDirectory() as tmp:
        procfile = Path(tmp) / "Procfile"
        lines = [f"s{i}: sleep 60" for i in range(tasks)] + ["fail: sleep 3; exit 3"]
        procfile.write_text("\n".join(lines) + "\n")
        began = time.monotonic()
        proc = subprocess.Popen(
            [*LONGRUN, "group", "-q", "--procfile", str(procfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        threads, peak = 0, 0
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                break
            for line in status.splitlines():
                if line.startswith("Threads:"):
                    threads = max(threads, int(line.split()[1]))
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            time.sleep(0.05)
        proc.wait()
        return threads, peak / 1024, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--big", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("## SIGKILL of longrun at random moments (0-0.8 s after start)\n")
        print("| case | kills | processes left | slowest clean-up |")
        print("|---|---|---|---|")
        for name, count, left, slowest in random_kills(args.kills, Path(tmp)):
            print(f"| {name} | {count} | {left} | {slowest:.2f} s |")
        print(f"\n## pid reuse in a private pid namespace\n\n{pid_reuse(Path(tmp))}")
    print(f"\n## 510 tasks under ulimit -Sn 1024\n\n{fd_limit_group()}")
    print(f"\n## 60 tasks under ulimit -u 40 (as nobody)\n\n{process_limit_group()}")
    median, worst, count = progress_bar_latency()
    print(
        "\n## a progress bar beside a line task\n\n"
        f"{count} of 40 lines; lateness median {median:.1f} ms, worst {worst:.1f} ms"
    )
    print("\n## /dev/full\n")
    for name, status in full_disk():
        print(f"- {name}: {status}")
    threads, rss, wall = big_group(args.big)
    print(
        f"\n## {args.big}-task group (one fails at 3 s)\n\n"
        f"at most {threads} threads in longrun, peak RSS {rss:.1f} MiB, "
        f"cancel-all done {wall:.1f} s after start"
    )


if __name__ == "__main__":
    main()
