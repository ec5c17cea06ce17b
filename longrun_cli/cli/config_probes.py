"""A group file's probes: ``ready`` and ``health`` of a task, as a string or a table.

``ready = "tcp:127.0.0.1:5432"`` is the command line's probe syntax;
``ready = { tcp = "127.0.0.1:5432", interval = "1s", timeout = "30s" }`` the table.
``health`` takes the same forms, its table with ``interval``, ``timeout`` and
``failures`` (the ``--health-*`` options).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from longrun_cli.cli import toml_values as values
from longrun_cli.policy.group import PROBE_KINDS, ReadyProbe
from longrun_cli.policy.probes import HealthCheck, parse_failures, parse_probe

if TYPE_CHECKING:
    from longrun_cli.cli.config import _TomlLoader

READY_KEYS = (*PROBE_KINDS, "interval", "timeout")
HEALTH_KEYS = (*PROBE_KINDS, "interval", "timeout", "failures")


def read_ready(loader: _TomlLoader, where: tuple[str, ...], raw: Any) -> ReadyProbe:
    key = (*where, "ready")
    if isinstance(raw, str):
        return loader.value(key, raw, lambda text: parse_probe(text, "ready"))
    if not isinstance(raw, dict):
        raise loader.error(key, 'must be a probe like "tcp:127.0.0.1:5432" or a table')
    loader.check_keys(key, raw, READY_KEYS)
    fields = _probe_fields(loader, key, raw)
    for name in ("interval", "timeout"):
        if name in raw:
            fields[name] = loader.value((*key, name), raw[name], values.as_positive_duration)
    return loader.value(key, fields, lambda f: ReadyProbe(**f))


def read_health(loader: _TomlLoader, where: tuple[str, ...], raw: Any) -> HealthCheck:
    key = (*where, "health")
    if isinstance(raw, str):
        probe = loader.value(key, raw, lambda text: parse_probe(text, "health"))
        return HealthCheck(probe)
    if not isinstance(raw, dict):
        raise loader.error(key, 'must be a probe like "http://127.0.0.1:8080/health" or a table')
    loader.check_keys(key, raw, HEALTH_KEYS)
    probe = loader.value(key, _probe_fields(loader, key, raw), lambda f: ReadyProbe(**f))
    settings: dict[str, Any] = {}
    for name in ("interval", "timeout"):
        if name in raw:
            settings[name] = loader.value((*key, name), raw[name], values.as_positive_duration)
    if "failures" in raw:
        settings["failures"] = loader.value(
            (*key, "failures"), raw["failures"], lambda n: parse_failures(str(n), "failures")
        )
    return loader.value(key, settings, lambda s: HealthCheck(probe, **s))


def _probe_fields(loader: _TomlLoader, key: tuple[str, ...], raw: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("stdout", "stderr", "output"):
        if name in raw:
            fields[name] = loader.value((*key, name), raw[name], values.as_regex)
    for name in ("command", "http", "tcp"):
        if name in raw:
            fields[name] = loader.value((*key, name), raw[name], values.as_string)
    return fields
