"""What longrun's log lines say, and that no field can forge a line or drive a terminal."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.cli.render import LogRenderer
from longrun_cli.engine.events import Event, Level


def rendered(log_format: str, event: Event) -> str:
    stream = io.StringIO()
    LogRenderer(log_format, 0, stream).emit(event)
    return stream.getvalue()


@given(st.text(), st.text())
def test_a_text_line_is_one_line_of_printable_characters(task, message):
    """Any task name or message (ESC, CR, NUL, newlines): one line, nothing a terminal acts on."""
    line = rendered("text", Event("x", task, Level.INFO, message, (("field", message),)))
    assert line.endswith("\n")
    assert line[:-1].isprintable(), repr(line)


def test_control_characters_are_written_as_escapes():
    """ESC and CR in a task name show as \\x1b and \\r."""
    line = rendered("text", Event("x", "a\x1b[31mb\rc", Level.INFO, "m"))
    assert 'task="a\\x1b[31mb\\rc"' in line


def test_no_rule_is_null_in_json_and_absent_in_text():
    """A failure no rule matched: "rule": null, and no rule= field at all in text."""
    event = Event("attempt-failed", "job", Level.WARNING, "attempt failed", (("rule", None),))
    assert json.loads(rendered("json", event))["rule"] is None
    assert "rule=" not in rendered("text", event)


def test_booleans_read_the_same_in_every_format():
    """timeout=true in text, as in JSON (it was True on a terminal)."""
    event = Event("x", "job", Level.INFO, "m", (("timeout", True),))
    assert "timeout=true" in rendered("text", event)
    assert json.loads(rendered("json", event))["timeout"] is True
