"""Statistics every layer shares: the Wilson interval of a proportion and the one-sided
two-proportion test. Pure and cheap to import (no numpy): the rollout analysis, the
monitoring figures and the variant comparison all use this one copy."""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["Z_95", "two_proportion_test", "wilson_interval"]

Z_95 = NormalDist().inv_cdf(0.975)
"""The normal quantile of a two-sided 95% interval (1.95996…)."""


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); ``None`` when ``n`` is 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float | None:
    """One-sided p-value that b's success rate is lower than a's (pooled two-proportion
    z-test): ``z = (p_a - p_b) / sqrt(p(1-p)(1/n_a + 1/n_b))`` with the pooled rate ``p``,
    and ``P(Z >= z)``. ``None`` when a sample is empty or both rates are 0 or both 1."""
    for successes, n in ((successes_a, n_a), (successes_b, n_b)):
        if not 0 <= successes <= n:
            raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    if n_a == 0 or n_b == 0:
        return None
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return None
    z = (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))
