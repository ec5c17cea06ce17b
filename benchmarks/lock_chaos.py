"""Chaos for ``--lock etcd://``: three longruns on one interval task, the holder SIGKILLed
or frozen (SIGSTOP for 1-3 TTLs, then SIGCONT) at random every few seconds.

Run: .venv/bin/python benchmarks/lock_chaos.py [--write] [--seconds 40] [--seed N]
(--write: docs/lock-chaos.md). Needs etcd and etcdctl (Debian: etcd-server, etcd-client).

Reported: overlapping runs (goal 0: every run stamps its start and end, and checks
that no earlier run still lives), ticks lost (runs expected at one per 200 ms,
minus runs made), and the handover time after each fault (from the fault to the
next run under a new token), median and worst, against the lease's TTL.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.etcd import etcd_server  # noqa: E402
from tests.integration.test_lock import runs, stamping  # noqa: E402

LONGRUN = str(Path(sys.executable).with_name("longrun"))
TTL = 2
TICK = 0.2


def instance(lock: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [LONGRUN, "exec", f"--lock={lock}", f"--lock-ttl={TTL}s", f"--interval={TICK}s",
         "--kill-after=1s", "--name=chaos", "--", "sh", "-c", stamping(log, 0.05)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def holder_pid(endpoint: str) -> int | None:
    """The pid in the lock key's value ("HOST pid PID NONCE"), as an operator would look."""
    out = subprocess.run(
        ["etcdctl", f"--endpoints={endpoint}", "get", "--print-value-only", "chaos"],
        capture_output=True, text=True, check=False, env={**os.environ, "ETCDCTL_API": "3"},
    ).stdout.split()  # fmt: skip
    return int(out[2]) if len(out) >= 3 and out[2].isdigit() else None


def main() -> None:
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 40.0
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
    rng = random.Random(seed)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"lock-chaos-{os.getpid()}.log"
    faults: list[tuple[float, str]] = []
    with etcd_server() as server:
        lock = f"etcd://{server.endpoint}/chaos"
        procs = [instance(lock, log) for _ in range(3)]
        began = time.time()
        try:
            while time.time() - began < seconds:
                time.sleep(rng.uniform(2.0, 5.0))
                pid = holder_pid(server.endpoint)
                holder = next((p for p in procs if p.pid == pid), None)
                if holder is None or holder.poll() is not None:
                    continue
                if rng.random() < 0.5:
                    faults.append((time.time(), "SIGKILL"))
                    holder.kill()
                    holder.wait()
                    procs[procs.index(holder)] = instance(lock, log)  # as systemd would
                else:
                    frozen = rng.uniform(1, 3) * TTL
                    faults.append((time.time(), f"SIGSTOP {frozen:.1f}s"))
                    os.kill(holder.pid, signal.SIGSTOP)
                    time.sleep(frozen)
                    os.kill(holder.pid, signal.SIGCONT)
        finally:
            ended = time.time()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
    overlaps = 0
    try:
        found = runs(log)
    except AssertionError:  # a run found an earlier one still alive
        overlaps = 1
        found = []
    if found:
        for first, second in itertools.pairwise(found):
            overlaps += first[1] > second[0]
    handovers = []
    for at, _kind in faults:
        before = max((tok for b, _e, _p, tok in found if b <= at), default=0)
        after = [b for b, _e, _p, tok in found if b > at and tok > before]
        if after:
            handovers.append(min(after) - at)
    expected = int((ended - began) / TICK)
    log.unlink(missing_ok=True)
    median = statistics.median(handovers) if handovers else float("nan")
    worst = max(handovers) if handovers else float("nan")
    lines = [
        "# `--lock etcd://` under chaos",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/lock_chaos.py --write` "
        f"(seed {seed}, {os.cpu_count()} cpus): 3 longruns, one interval task every "
        f"{TICK * 1000:.0f} ms for {ended - began:.0f} s, a lease of {TTL} s, the holder "
        f"SIGKILLed (and started again) or frozen for 1-3 TTLs every 2-5 s at random.",
        "",
        f"- faults: {len(faults)} ({sum(k == 'SIGKILL' for _a, k in faults)} SIGKILL, "
        f"{sum(k.startswith('SIGSTOP') for _a, k in faults)} SIGSTOP)",
        f"- runs: {len(found)}; overlapping runs: **{overlaps}** (goal 0)",
        f"- ticks lost: {max(0, expected - len(found))} of {expected} "
        f"({max(0, expected - len(found)) / max(expected, 1):.0%}): the handovers, and "
        "ticks a run overran",
        f"- handover after a fault: median **{median:.2f} s**, worst **{worst:.2f} s**, "
        f"against a TTL of {TTL} s (a SIGKILLed holder's lease must run out: about one TTL; "
        "a frozen one is replaced as its lease runs out, and stands by once thawed)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        (ROOT / "docs" / "lock-chaos.md").write_text(text)


if __name__ == "__main__":
    main()
