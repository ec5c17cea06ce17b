"""The state file's records (pure): what is accepted, what is refused and why."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.state import (
    TaskState,
    check_document,
    new_document,
    read_task,
    write_task,
)

RULES = ["exit 75: retries=3 backoff=1s,30s,2", "timeout: retries=inf backoff=1s,30s,2"]


def test_a_written_state_reads_back():
    state = TaskState((2, 0), 1_800_000_000.5, 0, 1_800_000_004.5)
    document = write_task(new_document(), "job", RULES, state)
    assert check_document(document) is None
    assert read_task(document, "job", RULES) == state
    assert read_task(write_task(document, "job", RULES, None), "job", RULES) is None


def test_other_tasks_and_other_rules_are_refused_with_the_reason():
    state = TaskState((1, 0), 1_800_000_000.0, 0, None)
    document = write_task(new_document(), "job", RULES, state)
    assert "another task" in str(read_task(document, "other", RULES))
    assert "rules changed" in str(read_task(document, "job", RULES[:1]))


def test_the_wait_is_never_longer_than_the_delay():
    state = TaskState((1,), 100.0, 0, 104.0)
    assert state.wait(now=101.0, longest=4.0) == 3.0
    assert state.wait(now=200.0, longest=4.0) == 0.0
    assert state.wait(now=-1e9, longest=4.0) == 4.0  # the clock was set back


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    entry=st.dictionaries(
        st.sampled_from(["rules", "spent", "last_failure", "rule", "retry_at", "x"]),
        json_values,
    )
    | json_values
)
def test_any_entry_is_a_state_or_a_reason(entry: Any):
    document = {**new_document(), "tasks": {"job": entry}}
    if isinstance(entry, dict) and "rules" not in entry:
        entry["rules"] = RULES
    found = read_task(document, "job", RULES)
    assert found is None or isinstance(found, (TaskState, str))
    if isinstance(found, TaskState):
        assert len(found.spent) == len(RULES)
        assert found.wait(now=0.0, longest=1.0) <= 1.0


@given(json_values)
def test_any_document_is_checked_without_raising(document: Any):
    reason = check_document(document)
    assert reason is None or "\n" not in reason
