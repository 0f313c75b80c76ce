"""The one backoff policy: every retry and every re-poll waits by these rules."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SAY_WAITS_FROM = 3.0  # a wait this long or longer is printed: a silent tool looks hung


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits base * 2**n, at most `cap`,
    times a random factor in [0.5, 1] so that many clients do not retry in step.

    `seed` makes the jitter repeatable (tests); `attempts` bounds how often a thing is tried.
    """

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    seed: int | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_random", random.Random(self.seed))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1` (attempt 0 is the first retry)."""
        return min(self.cap, self.base * 2**attempt) * self._random.uniform(0.5, 1.0)
