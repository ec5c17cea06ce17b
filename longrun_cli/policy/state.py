"""What ``--state-file`` keeps of a task, and what a restarted longrun makes of it (pure).

Each rule's consecutive failures (its budget spent, and so its backoff position),
the wall time of the last failure, the rule it matched and when the next attempt
may start. A record is stamped with the task's name and its rules as written, so
a file of another task (foreign) or of rules since changed (outdated) is refused
with the reason instead of being applied to rules it does not describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT = "longrun-state"
VERSION = 1


@dataclass(frozen=True)
class TaskState:
    spent: tuple[int, ...]  # per rule, in checking order: failures in a row
    last_failure: float  # wall time, seconds since the epoch
    rule: int | None  # the rule the last failure matched (None: permanent)
    retry_at: float | None  # wall time the next attempt may start (None: at once)

    def wait(self, now: float, longest: float) -> float:
        """Seconds still to wait before the next attempt; never more than ``longest`` (the
        delay itself), so a clock set back cannot make a restarted longrun wait for ever."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, min(self.retry_at - now, longest))

    def to_json(self) -> dict[str, Any]:
        return {
            "spent": list(self.spent),
            "last_failure": self.last_failure,
            "rule": self.rule,
            "retry_at": self.retry_at,
        }


def new_document() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "tasks": {}}


def check_document(document: Any) -> str | None:
    """None for a state file longrun can read, else why not (one line)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return "not a longrun state file"
    if document.get("version") != VERSION:
        return f"state format version {document.get('version')!r}, this longrun reads {VERSION}"
    if not isinstance(document.get("tasks"), dict):
        return "not a longrun state file (no tasks)"
    return None


def read_task(document: dict[str, Any], task: str, rules: list[str]) -> TaskState | str | None:
    """The task's saved state; None when the file holds none; a string: why it is ignored."""
    entry = document["tasks"].get(task)
    if entry is None:
        others = sorted(document["tasks"])
        if others:
            return f"it belongs to another task ({', '.join(map(repr, others[:3]))})"
        return None
    if not isinstance(entry, dict):
        return "corrupt entry"
    if entry.get("rules") != rules:
        return "the retry rules changed since it was written"
    spent, last, rule, retry_at = (
        entry.get("spent"),
        entry.get("last_failure"),
        entry.get("rule"),
        entry.get("retry_at"),
    )
    if (
        not isinstance(spent, list)
        or len(spent) != len(rules)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in spent)
        or not _is_time(last)
        or not (retry_at is None or _is_time(retry_at))
        or not (rule is None or (isinstance(rule, int) and 0 <= rule < len(rules)))
        or isinstance(rule, bool)
    ):
        return "corrupt entry"
    assert isinstance(last, (int, float))
    return TaskState(tuple(spent), float(last), rule, None if retry_at is None else float(retry_at))


def write_task(
    document: dict[str, Any], task: str, rules: list[str], state: TaskState | None
) -> dict[str, Any]:
    """A copy of ``document`` with the task's entry replaced (``None``: removed)."""
    tasks = dict(document["tasks"])
    if state is None:
        tasks.pop(task, None)
    else:
        tasks[task] = {"rules": rules, **state.to_json()}
    return {**document, "tasks": tasks}


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11
