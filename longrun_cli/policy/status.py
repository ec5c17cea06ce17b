"""Exit statuses of SPEC §6, derived from an attempt's outcome."""

from __future__ import annotations

from longrun_cli.policy.outcome import Outcome

EXIT_TIMEOUT = 124
EXIT_USAGE = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


def exit_status(outcome: Outcome) -> int:
    """The status longrun ends with when ``outcome`` is the task's final failure."""
    if outcome.timed_out:
        return EXIT_TIMEOUT
    if outcome.unhealthy is not None:
        # Stopped by longrun: the command's own status after the stop, never a success.
        code = outcome.exit_code
        return code if code else 1
    if outcome.signal is not None:
        return 128 + outcome.signal
    if outcome.exit_code is None:
        return 1
    return outcome.exit_code
