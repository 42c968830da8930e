"""The shared statistics: the two-proportion test and the Wilson interval, by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from scipy.stats import norm

from dockyard.stats import two_proportion_test, wilson_interval


def test_two_proportion_test_matches_a_hand_computation() -> None:
    # 90/100 vs 80/100: pooled 0.85, se = sqrt(0.85 * 0.15 * 0.02), z = 0.1 / se
    se = math.sqrt(0.85 * 0.15 * (1 / 100 + 1 / 100))
    z = 0.1 / se
    assert z == pytest.approx(1.9803, abs=1e-4)
    p_value = two_proportion_test(90, 100, 80, 100)
    assert p_value is not None
    assert p_value == pytest.approx(float(norm.sf(z)), rel=1e-12)
    assert p_value == pytest.approx(0.023835, abs=1e-6)
    # the other direction is the complement; an equal rate is a coin flip
    assert two_proportion_test(80, 100, 90, 100) == pytest.approx(1 - p_value)
    assert two_proportion_test(30, 60, 15, 30) == pytest.approx(0.5)


def test_two_proportion_test_undefined_and_invalid() -> None:
    assert two_proportion_test(0, 0, 5, 10) is None
    assert two_proportion_test(10, 10, 20, 20) is None
    assert two_proportion_test(0, 10, 0, 20) is None
    with pytest.raises(ValueError, match="must lie"):
        two_proportion_test(11, 10, 5, 10)


def test_wilson_interval_matches_a_hand_computation() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="must lie"):
        wilson_interval(11, 10)
    narrow = wilson_interval(5, 10, z=1.0)
    assert narrow is not None
    # by hand: centre 0.5, half-width z/(1 + z²/n) * sqrt(p(1-p)/n + z²/4n²) with z = 1
    half = 1 / 1.1 * math.sqrt(0.25 / 10 + 1 / 400)
    assert narrow == pytest.approx((0.5 - half, 0.5 + half))


def test_monitoring_and_rollouts_use_the_one_copy() -> None:
    from dockyard.deploy import rollout
    from dockyard.monitoring import performance

    assert performance.wilson_interval is wilson_interval
    assert rollout.two_proportion_test is two_proportion_test


def test_importing_the_module_stays_light() -> None:
    probe = "import sys, dockyard.stats\nprint([m for m in ('numpy', 'scipy') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
