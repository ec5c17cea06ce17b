"""A retry rule binds a matcher to its own budget and backoff (Go's TransientRule)."""

from __future__ import annotations

from dataclasses import dataclass, field

from longrun_cli.policy.backoff import Backoff
from longrun_cli.policy.errors import SpecError
from longrun_cli.policy.matcher import Matcher

DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class RetryRule:
    """``retries is None`` means unlimited consecutive retries."""

    matcher: Matcher
    retries: int | None = DEFAULT_RETRIES
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.retries is not None and self.retries < 1:
            raise SpecError(f"retries must be >= 1 or inf, got {self.retries}")

    def describe(self) -> str:
        budget = "inf" if self.retries is None else str(self.retries)
        return f"{self.matcher.describe()}: retries={budget} backoff={self.backoff.describe()}"
