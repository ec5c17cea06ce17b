"""The peer benchmark's own arithmetic and configs, so `benchmarks/run` cannot rot unseen."""

from __future__ import annotations

import configparser
import time

import pytest

from benchmarks.peers import _log_stamp, supervisord_conf, table


def test_rows_are_ratios_to_the_fastest_when_lower_is_better():
    """Times: the smallest row is 1.00x and the others are multiples of it."""
    lines = table("t", {"fast": 2.0, "slow": 5.0}, "ms")
    assert "| fast | 2.000 | 1.00x |" in lines
    assert "| slow | 5.000 | 2.50x |" in lines


def test_rows_are_ratios_to_the_best_when_higher_is_better():
    """Rates: the largest row is 1.00x and a half-rate row is 2.00x slower."""
    lines = table("t", {"pipe": 1000.0, "tool": 500.0}, "MiB/s", lower_is_better=False)
    assert "| pipe | 1000.000 | 1.00x |" in lines
    assert "| tool | 500.000 | 2.00x |" in lines


def test_a_zero_best_gives_no_ratio():
    """Idle CPU of 0 makes ratios meaningless: they say so instead of dividing by zero."""
    lines = table("t", {"idle": 0.0, "busy": 3.0}, "ms")
    assert "| idle | 0.000 | 1.00x |" in lines
    assert "| busy | 3.000 | n/a (best is 0) |" in lines


def test_supervisord_log_stamps_keep_their_milliseconds():
    """Restart gaps come from supervisord's own millisecond stamps."""
    first = _log_stamp("2026-11-28 11:25:05,444 WARN exited: fail (exit status 1)")
    second = _log_stamp("2026-11-28 11:25:06,458 WARN exited: fail (exit status 1)")
    assert second - first == pytest.approx(1.014)
    assert first == pytest.approx(time.mktime((2026, 11, 28, 11, 25, 5, 0, 0, -1)) + 0.444)


def test_supervisord_config_runs_each_program_once_without_logs():
    """Every program starts at once, is never restarted and logs nowhere unless asked."""
    path = supervisord_conf({"a": "true", "b": "sleep 1"}, stderr_logfile="/dev/stderr")
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    assert config["supervisord"]["nodaemon"] == "true"
    for name, command in (("a", "true"), ("b", "sleep 1")):
        program = config[f"program:{name}"]
        assert program["command"] == command
        assert program["autorestart"] == "false"
        assert program["startsecs"] == "0"
        assert program["stdout_logfile"] == "NONE"
        assert program["stderr_logfile"] == "/dev/stderr"
