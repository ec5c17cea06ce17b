"""The one error the policy core raises for bad user input."""


class SpecError(ValueError):
    """A user-supplied value is malformed; the message names the value."""
