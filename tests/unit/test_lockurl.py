"""--lock URL (pure): any text is a lock whose URL reads back the same, or one clear line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.policy.duration import SECOND
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.lockurl import parse_lock


@pytest.mark.parametrize(
    ("text", "kind", "where"),
    [
        ("/var/lock/x", "file", "/var/lock/x"),
        ("file:rel/x", "file", "rel/x"),
        ("etcd://10.0.0.5:2379,10.0.0.6:2379/jobs/a", "etcd", "jobs/a"),
        ("etcd://[::1]:2379/k", "etcd", "k"),
    ],
)
def test_lock_urls(text, kind, where):
    spec = parse_lock(text)
    assert spec.kind == kind
    assert (spec.path if kind == "file" else spec.key) == where
    assert parse_lock(spec.url, spec.ttl if kind == "etcd" else None) == spec


@given(st.text(max_size=40), st.none() | st.integers(0, 100) | st.just(3 * SECOND))
def test_any_lock_text_is_a_lock_or_one_line(text, ttl):
    try:
        spec = parse_lock(text, ttl)
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    assert parse_lock(spec.url, spec.ttl if spec.kind == "etcd" else None) == spec
