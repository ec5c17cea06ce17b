"""Every file in examples/ is run or verified."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import LONGRUN, contains, longrun, start, wait_for

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LONGRUN_SCRIPT = str(Path(sys.executable).with_name("longrun"))


def dry_run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Check an example's longrun command line by running it with --dry-run."""
    assert argv[0] in ("longrun", "/usr/local/bin/longrun")
    command = argv[1]
    return longrun(command, "--dry-run", *argv[2:])


def test_every_example_is_covered():
    """Adding an example without a test fails here."""
    covered = {
        "flaky.sh", "longrun-sync.service", "Makefile", "github-actions.yml",
        "gitlab-ci.yml", "Dockerfile", "k8s-job.yaml", "longrun.toml",
        "k8s-deployment-lock.yaml", "longrun-poller.service",
    }  # fmt: skip
    assert {path.name for path in EXAMPLES.iterdir()} == covered


def test_flaky_script_succeeds_on_the_third_attempt():
    """The README's first command: exit 75 twice, then success."""
    result = longrun("exec", "--retry-exit-code", "75:5:50ms", "--", str(EXAMPLES / "flaky.sh"))
    assert result.returncode == 0
    assert result.stdout == b"attempt 3: done\n"


@pytest.mark.parametrize("name", ["longrun-sync.service", "longrun-poller.service"])
def test_systemd_unit_verifies(tmp_path, name):
    """systemd-analyze verify accepts the unit (paths pointed at this machine)."""
    unit = (EXAMPLES / name).read_text()
    unit = unit.replace("/usr/local/bin/longrun", LONGRUN_SCRIPT)
    for script in ("/usr/local/bin/sync.sh", "/usr/local/bin/poll.sh"):
        unit = unit.replace(script, str(EXAMPLES / "flaky.sh"))
    path = tmp_path / name
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1))
    assert dry_run(["longrun", *argv[1:]]).returncode == 0


def test_makefile_targets_run_longrun(tmp_path):
    """make deploy retries the deploy script by its exit code."""
    script = tmp_path / "deploy.sh"
    script.write_text('#!/bin/sh\n[ "$LONGRUN_ATTEMPT" -ge 2 ] && echo deployed || exit 75\n')
    script.chmod(0o755)
    result = subprocess.run(
        ["make", "-s", "-f", str(EXAMPLES / "Makefile"), "deploy", f"LONGRUN={LONGRUN_SCRIPT}"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deployed"
    dry = subprocess.run(
        ["make", "-n", "-f", str(EXAMPLES / "Makefile"), "integration"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert dry_run(shlex.split(dry.stdout.strip())).returncode == 0


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_steps_are_valid_longrun_commands(name):
    """The longrun line of each CI example parses (checked with --dry-run)."""
    lines = [
        line.split("run:", 1)[-1].strip().lstrip("- ").strip()
        for line in (EXAMPLES / name).read_text().splitlines()
        if "longrun exec" in line
    ]
    assert lines
    for line in lines:
        result = dry_run(shlex.split(line))
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("Dockerfile", r"ENTRYPOINT (\[.*\])"),
        ("k8s-job.yaml", r"command: (\[.*\])"),
        ("k8s-deployment-lock.yaml", r"command: (\[.*\])"),
    ],
)
def test_container_entrypoints_are_valid_longrun_commands(name, pattern):
    """The Dockerfile's and the Job's longrun command lines parse (--dry-run)."""
    match = re.search(pattern, (EXAMPLES / name).read_text())
    assert match is not None
    result = dry_run(json.loads(match.group(1)))
    assert result.returncode == 0, result.stderr


def test_container_entrypoint_behaves_as_pid_1(tmp_path):
    """The Dockerfile's entrypoint, run as PID 1 in a PID namespace, stops on TERM."""
    ready = tmp_path / "ready"
    worker = tmp_path / "worker.sh"
    worker.write_text(f"#!/bin/sh\ntouch {ready}\nexec sleep 60\n")
    worker.chmod(0o755)
    match = re.search(r"ENTRYPOINT (\[.*\])", (EXAMPLES / "Dockerfile").read_text())
    assert match is not None
    argv = [arg.replace("/app/worker.sh", str(worker)) for arg in json.loads(match.group(1))]
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *LONGRUN, *argv[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    # unshare forwards nothing: signal longrun, PID 1 of the namespace, directly.
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM


def test_web_app_group_runs_migration_server_and_poller(tmp_path: Path):
    """The example group: migrate, then web (probe-ready), then the poller reaches it."""
    log = tmp_path / "stdout"
    with log.open("wb") as out:
        proc = start("group", str(EXAMPLES / "longrun.toml"), cwd=EXAMPLES, stdout=out)
        wait_for(contains(log, b"poll 200"), timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    text = log.read_text()
    assert proc.returncode == -signal.SIGTERM, err.decode()
    assert text.index("schema up to date") < text.index("poll 200")
    assert "web     | web drained" in text
    assert b"event=ready" in err


@pytest.mark.parametrize("name", ["k8s-job.yaml", "k8s-deployment-lock.yaml"])
def test_kubernetes_manifests_validate_against_the_schemas(name):
    """kubernetes-validate (the API's own OpenAPI schemas, strict: no unknown fields)."""
    import kubernetes_validate
    import yaml

    for document in yaml.safe_load_all((EXAMPLES / name).read_text()):
        kubernetes_validate.validate(document, "1.33", strict=True)


def test_the_jobs_failure_policy_maps_longruns_statuses():
    import yaml

    job = yaml.safe_load((EXAMPLES / "k8s-job.yaml").read_text())
    rules = {
        rule["action"]: rule["onExitCodes"]["values"]
        for rule in job["spec"]["podFailurePolicy"]["rules"]
        if "onExitCodes" in rule
    }
    assert rules == {"FailJob": [125, 126, 127], "Count": [124, 75]}
