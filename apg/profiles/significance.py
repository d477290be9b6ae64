"""When a category may be called over-represented in a persona, and when a contrast may name it.

A share that is higher in a persona than in everyone is a *claim* only when it survives a test:

- **Test.** A two-sided two-proportion z-test (pooled variance) of the persona's share against
  the share among **the rest** of the users: members ``x1`` of ``n1`` versus non-members
  ``x2 = X - x1`` of ``n2 = N - n1``. Not against everyone: everyone includes the persona, so
  the two samples would overlap and the test would be too lenient for a large persona (and
  meaningless for a persona that is everyone). The z-test equals Pearson's chi-square test of
  the 2x2 table without continuity correction (z² = χ²).
- **Multiplicity.** Benjamini–Hochberg across every category the persona was tested on (all its
  categorical demographic columns together): a category is significant when its BH-adjusted
  p-value (``q``) is at most ``narration.significance`` (default 0.05).
- **Size.** At least ``narration.min_cell`` users of the persona in the category.
- **Direction.** The persona's share is above the rest's (lift above 1).

Only then is it "over-represented"; any other category may still be listed as a plain share.

Names use only contrasts of at least a medium effect: ``|standardised difference| >= 0.5`` SD
(Cohen's d of 0.5), and for a 0-1 feature (a rate, flag or share) also at least 5 percentage
points apart with a multiple of at least 1.5 (higher) or at most 1/1.5 (lower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_SIGNIFICANCE = 0.05
NAME_STD_DIFF = 0.5  # Cohen's medium effect: weaker contrasts never name a persona
NAME_RATE_POINTS = 5.0  # percentage points a rate must move to name a persona
NAME_RATE_LIFT = 1.5  # and by this multiple (or 1/this for lower)


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of H0: p1 == p2 for ``x1/n1`` vs ``x2/n2`` (pooled z-test).

    1.0 when there is nothing to compare (an empty group, or a share of 0 or 1 in both).
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2))


def vs_rest_p(count: int, size: int, population_count: int, n_users: int) -> float:
    """p-value of a persona's category share (``count`` of ``size``) against the rest of the
    users (``population_count - count`` of ``n_users - size``)."""
    rest_n = n_users - size
    rest_x = min(max(population_count - count, 0), max(rest_n, 0))
    return two_proportion_p(count, size, rest_x, rest_n)


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q), in the input's order.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the ascending order, capped at 1: rejecting
    every hypothesis with ``q <= alpha`` is the BH step-up procedure at level ``alpha``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * (m / rank))
        out[i] = min(running, 1.0)
    return out


def is_over_represented(
    *, count: int, lift: float, q_value: float | None, level: float, min_cell: int
) -> bool:
    """Whether a category may be called over-represented (see the module's rules)."""
    return q_value is not None and q_value <= level and count >= min_cell and lift > 1


def nameable(std_diff: float, rate: tuple[float, float] | None = None) -> bool:
    """Whether a contrast is strong enough to name a persona.

    ``rate``: (persona mean, everyone's mean) of a 0-1 feature, which must also move at least
    ``NAME_RATE_POINTS`` points and by ``NAME_RATE_LIFT`` (either way).
    """
    if not math.isfinite(std_diff) or abs(std_diff) < NAME_STD_DIFF:
        return False
    if rate is None:
        return True
    persona, everyone = rate
    if abs(persona - everyone) * 100 < NAME_RATE_POINTS:
        return False
    if persona >= everyone:
        return everyone == 0 or persona / everyone >= NAME_RATE_LIFT
    return persona <= everyone / NAME_RATE_LIFT
