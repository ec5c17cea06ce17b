"""The one error the policy core raises for bad user input."""


class SpecError(ValueError):
    """A user-supplied value is malformed; the message names the value."""


def quote(text: str) -> str:
    """A user's value in a message: quoted, every control character escaped, and bytes
    that were not UTF-8 shown as the bytes they were (\\xff), not as Python's \\udcff."""
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    shown = printable(shown)
    return f'"{shown}"' if "'" in shown and '"' not in shown else f"'{shown}'"


def printable(text: str) -> str:
    """Every control character escaped: no value can forge a line or drive a terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(char: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    code = ord(char)
    return named.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
