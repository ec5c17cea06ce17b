"""Per-rule consecutive retry budgets (Go's RuleTracker), as immutable values."""

from __future__ import annotations

from typing import NamedTuple


class Budgets(NamedTuple):
    """Failures counted so far for each rule, in the policy's rule order."""

    spent: tuple[int, ...]

    @classmethod
    def fresh(cls, rule_count: int) -> Budgets:
        return cls((0,) * rule_count)

    def on_failure(self, index: int, limit: int | None) -> tuple[int, bool, Budgets]:
        """Record a failure of rule ``index``.

        Returns the 0-based attempt within that rule's streak, whether a retry is
        allowed, and the new budgets. With ``limit=3`` the 4th failure is refused.
        """
        attempt = self.spent[index]
        allowed = limit is None or attempt < limit
        spent = list(self.spent)
        spent[index] = attempt + 1
        return attempt, allowed, Budgets(tuple(spent))

    def reset(self) -> Budgets:
        """Back to zero for every rule, as after a successful interval tick."""
        return Budgets.fresh(len(self.spent))
