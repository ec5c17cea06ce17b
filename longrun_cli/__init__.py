"""longrun: run shell commands as supervised tasks."""

__version__ = "0.1.0"
# The name on PyPI: "longrun" and "longrun-cli" belong to unrelated projects.
DISTRIBUTION = "longrun-supervisor"
