"""The router's choice of a route: weighted split, sticky draw and the pure choice under them.

``sticky_draw`` must give the same point for a key in every process and replica (it is a
hash, pinned here to known values), spread keys evenly, and keep a caller with its variant;
``choose_index`` must honour the weights at their boundaries; and ``Endpoint.choose`` must
keep a canary's callers as its share grows.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from dockyard.serving.endpoint import Endpoint, choose_index, sticky_draw

KEYS = [f"caller-{i}" for i in range(20_000)]


@dataclass(frozen=True)
class _Traffic:
    sticky_header: str = "x-dockyard-key"
    sticky_field: str | None = None


@dataclass(frozen=True)
class _Spec:
    traffic: _Traffic = field(default_factory=_Traffic)


@dataclass(frozen=True)
class _Deployment:
    """What an ``Endpoint`` reads of a deployment revision."""

    name: str = "clf"
    revision: int = 1
    spec: _Spec = field(default_factory=_Spec)


def endpoint(*weights: int) -> Endpoint:
    """An endpoint whose routes are the strings ``"r0"``, ``"r1"``... with ``weights``."""
    routes = [(f"r{i}", weight) for i, weight in enumerate(weights)]
    return Endpoint(_Deployment(), routes)  # type: ignore[arg-type]


# --- sticky_draw -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "point"),
    [("user-1", 0.6041924073669338), ("caller-42", 0.14324295333856157), ("é", 0.7933768955844694)],
)
def test_a_key_draws_a_fixed_point(key: str, point: float) -> None:
    # pinned: a change here moves callers between variants on every replica at once
    assert sticky_draw(key) == point


def test_the_draw_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from dockyard.serving.endpoint import sticky_draw; print(repr(sticky_draw('user-1')))"
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert float(out.stdout) == sticky_draw("user-1")


def test_draws_lie_in_the_unit_interval_and_spread_evenly() -> None:
    draws = [sticky_draw(key) for key in KEYS]
    assert all(0.0 <= d < 1.0 for d in draws)
    counts = [0] * 10
    for d in draws:
        counts[int(d * 10)] += 1
    expected = len(KEYS) / 10
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.9  # 9 degrees of freedom, p = 0.001: fixed keys, so this never flakes


def test_keys_that_are_not_plain_text_still_draw() -> None:
    assert 0.0 <= sticky_draw("\ud800") < 1.0  # a lone surrogate, as JSON may carry
    assert sticky_draw("a") != sticky_draw("A")


# --- choose_index ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draw", "index"),
    [(0.0, 0), (0.2999, 0), (0.3, 1), (0.5, 1), (0.8, 2), (0.9999999, 2)],
)
def test_choose_index_takes_the_first_share_above_the_draw(draw: float, index: int) -> None:
    assert choose_index([0.3, 0.8, 1.0], draw) == index


def test_a_draw_past_a_rounded_down_total_takes_the_last_route() -> None:
    assert choose_index([1 / 3, 2 / 3, 0.9999999999999999], 0.99999999999999995) == 2


# --- Endpoint.choose: the split --------------------------------------------------------------


def test_a_single_route_is_always_chosen() -> None:
    one = endpoint(100)
    assert {one.choose(key=key) for key in KEYS[:100]} == {"r0"}
    assert one.choose(draw=0.999) == "r0"


@pytest.mark.parametrize("weights", [(80, 20), (50, 50), (10, 30, 60), (1, 99)])
def test_keys_split_by_weight(weights: tuple[int, ...]) -> None:
    split = endpoint(*weights)
    chosen = [split.choose(key=key) for key in KEYS]
    for i, weight in enumerate(weights):
        share = chosen.count(f"r{i}") / len(KEYS)
        assert share == pytest.approx(weight / sum(weights), abs=0.015), (i, share)


def test_weights_need_not_sum_to_a_hundred() -> None:
    assert [endpoint(1, 3).choose(draw=d) for d in (0.0, 0.24, 0.25, 0.99)] == [
        "r0",
        "r0",
        "r1",
        "r1",
    ]


def test_a_route_of_weight_zero_is_never_chosen() -> None:
    for weights, never in (((100, 0), "r1"), ((0, 100), "r0"), ((50, 0, 50), "r1")):
        split = endpoint(*weights)
        assert never not in {split.choose(key=key) for key in KEYS[:2000]}
        assert never not in {split.choose(draw=d / 100) for d in range(100)}


def test_a_key_keeps_its_route_across_calls_and_revisions() -> None:
    first, second = endpoint(50, 50), endpoint(50, 50)
    for key in KEYS[:500]:
        assert first.choose(key=key) == first.choose(key=key) == second.choose(key=key)


def test_a_growing_canary_keeps_the_callers_it_had() -> None:
    shares = (1, 5, 10, 25, 50, 100)
    callers = [
        {key for key in KEYS if endpoint(100 - share, share).choose(key=key) == "r1"}
        for share in shares
    ]
    for fewer, more in itertools.pairwise(callers):
        assert fewer <= more
    assert len(callers[0]) > 0
    assert len(callers[-1]) == len(KEYS)


def test_without_a_key_the_draw_is_random_by_weight() -> None:
    split = endpoint(80, 20)
    chosen = [split.choose() for _ in range(4000)]
    assert set(chosen) == {"r0", "r1"}
    assert 0.1 < chosen.count("r1") / len(chosen) < 0.3  # 20% expected; 4,000 draws
