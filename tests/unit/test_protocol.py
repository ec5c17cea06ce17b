"""The control protocol's request parser: every input is a Request or one error line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longrun_cli.control import protocol
from longrun_cli.control.protocol import ProtocolError, Request, parse_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), json_values),
        "verb": st.one_of(st.sampled_from(protocol.VERBS), json_values),
        "tasks": st.one_of(st.lists(st.text(), max_size=3), json_values),
        "lines": st.one_of(st.integers(-5, 200_000), json_values),
        "follow": json_values,
        "watch": json_values,
    },
)


def parsed(line: bytes) -> Request | str:
    try:
        return parse_request(line)
    except ProtocolError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message
        assert exc.code in (protocol.BAD_REQUEST, protocol.TOO_LONG)
        return message


@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_an_error(line):
    parsed(line)


@given(fields)
def test_any_json_object_is_a_request_or_an_error(message):
    result = parsed(json.dumps(message).encode())
    if isinstance(result, Request):
        assert result.verb in protocol.VERBS
        assert message.get("version") == 1
        assert all(isinstance(name, str) for name in result.tasks)


@given(st.text(max_size=200))
def test_any_text_is_a_request_or_an_error(text):
    parsed(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"", "request is not JSON: Expecting value"),
        (b"\xff", "request is not UTF-8"),
        (b"[1]", "request must be a JSON object"),
        (b'{"verb":"status"}', '"version" is missing (this longrun speaks 1)'),
        (b'{"version":true,"verb":"status"}', "unsupported version true (this longrun speaks 1)"),
        (b'{"version":1,"verb":"reboot"}', '"verb" must be one of status, restart, stop, start, logs, shutdown, got "reboot"'),
        (b'{"version":1,"verb":"stop"}', "stop needs at least one task name"),
        (b'{"version":1,"verb":"stop","tasks":[1]}', '"tasks" must be a list of task names'),
        (b'{"version":1,"verb":"status","tasks":["a"]}', 'status takes no "tasks"'),
        (b'{"version":1,"verb":"logs","lines":-1}', '"lines" must be an integer from 0 to 100000, got -1'),
        (b'{"version":1,"verb":"logs","lines":1.5}', '"lines" must be an integer from 0 to 100000, got 1.5'),
        (b'{"version":1,"verb":"stop","tasks":["a"],"follow":true}', '"follow" does not apply to stop'),
        (b'{"version":1,"verb":"status","extra":1}', 'unknown field "extra"'),
        (b"[" * 100_000, "request longer than 65536 bytes"),
        (b"[" * 60_000, "request is not JSON: too deeply nested"),
        (b'{"version":1,"verb":"logs","lines":' + b"9" * 5000 + b"}", "request is not JSON: a number too long"),
    ],
)  # fmt: skip
def test_errors_say_what_is_wrong_in_one_line(line, error):
    assert parsed(line) == error


def test_a_good_request():
    line = b'{"version":1,"verb":"logs","tasks":["web"],"lines":5,"follow":true}'
    assert parse_request(line) == Request("logs", ("web",), 5, True, False)
    assert parse_request(b'{"version":1,"verb":"status","watch":true}').watch
