"""longrun: run shell commands as supervised tasks."""

__version__ = "0.1.0"
