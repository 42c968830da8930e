"""The queue's admission policy, pure: the cost model fitted from measured batches, the
wait it predicts, and when it refuses (and with which ``Retry-After``)."""

from __future__ import annotations

import pytest

from dockyard.serving.admission import Admission, Refusal


def admission(**kwargs: float) -> Admission:
    options: dict[str, float] = {"max_wait_s": 1.0, "max_rows": 65_536, "batch_rows": 64}
    options.update(kwargs)
    return Admission(
        max_wait_s=options["max_wait_s"],
        max_rows=int(options["max_rows"]),
        batch_rows=int(options["batch_rows"]),
    )


def test_before_any_batch_is_measured_only_the_row_cap_refuses() -> None:
    policy = admission(max_rows=100)

    assert policy.costs() == (0.0, 0.0)
    assert policy.decide(queued=90, rows=10) is None
    assert policy.decide(queued=91, rows=10) == Refusal(too_large=False, wait_s=0.0)
    assert policy.decide(queued=0, rows=101) == Refusal(too_large=True, wait_s=0.0)


def test_fixed_and_per_row_costs_are_fitted_from_batches_of_different_sizes() -> None:
    policy = admission()
    for rows in (1, 64, 10, 32, 1, 64):
        policy.observe(rows, 0.001 + rows * 0.0001)  # 1 ms a call, 100 µs a row

    fixed, per_row = policy.costs()

    assert fixed == pytest.approx(0.001)
    assert per_row == pytest.approx(0.0001)
    # 130 rows drain in three batches of at most 64: 3 calls and 130 rows
    assert policy.wait_s(130) == pytest.approx(3 * 0.001 + 130 * 0.0001)


def test_a_cost_growing_faster_than_the_rows_gets_the_best_line_through_zero() -> None:
    # a call's time growing faster than its rows (waits for the GIL grow with the batch):
    # the straight fit would cost a call -6.5 ms
    observed = [(8, 0.002), (16, 0.012), (8, 0.003), (16, 0.011)]
    policy = admission()
    for rows, seconds in observed:
        policy.observe(rows, seconds)

    fixed, per_row = policy.costs()

    assert fixed == 0.0
    # what least squares with fixed >= 0 gives, weighted as the policy weighs batches
    keep = 1 - 0.05
    weights = [keep ** (len(observed) - 1 - i) for i in range(len(observed))]
    xy = sum(w * r * t for w, (r, t) in zip(weights, observed, strict=True))
    xx = sum(w * r * r for w, (r, _) in zip(weights, observed, strict=True))
    assert per_row == pytest.approx(xy / xx)
    assert per_row < 0.012 / 16 * 1.01  # not steeper than the costliest batch per row


def test_batches_all_of_one_size_count_their_whole_cost_per_row() -> None:
    policy = admission()
    for _ in range(5):
        policy.observe(10, 0.002)

    assert policy.costs() == pytest.approx((0.0, 0.0002))
    assert policy.wait_s(100) == pytest.approx(0.02)


# one-row traffic to a native pipeline on the compute thread: batches of 8-16 rows, 1 ms a
# call and 50 µs a row, plus waits for the GIL that grow with the load and so with the batch
ONE_ROW_TRAFFIC = [(8, 0.0074), (16, 0.0168), (12, 0.0121), (8, 0.0074), (16, 0.0168)] * 4


def test_anchors_keep_one_kind_of_traffic_from_setting_the_slope() -> None:
    anchored, bare = admission(), admission()
    anchored.anchor(1, 0.00105)  # the same calls on a quiet server
    anchored.anchor(64, 0.0042)
    for rows, seconds in ONE_ROW_TRAFFIC:
        anchored.observe(rows, seconds)
        bare.observe(rows, seconds)

    fixed, per_row = anchored.costs()

    assert per_row < 0.0002  # the anchors' 50 µs a row, and some of the batches' spread
    assert fixed == pytest.approx(0.0121 - per_row * 12, rel=0.1)  # the batches' level
    # fifteen 100-row requests (each a call of its own): ~0.2 s, where the batches alone
    # extrapolate ~1 ms a row and refuse them
    assert anchored.decide(queued=1500, rows=100, alone=15, alone_rows=1500) is None
    assert bare.decide(queued=1500, rows=100, alone=15, alone_rows=1500) is not None


def test_anchors_alone_are_the_line_through_them() -> None:
    policy = admission()
    policy.anchor(1, 0.0011)
    policy.anchor(64, 0.0074)

    assert policy.costs() == pytest.approx((0.001, 0.0001))


def test_anchors_do_not_hide_a_cost_that_grows_with_the_rows() -> None:
    policy = admission()
    policy.anchor(1, 0.002)  # 1 ms a call, 1 ms a row
    policy.anchor(64, 0.065)
    for rows in (8, 16, 12) * 10:
        policy.observe(rows, 0.001 + rows * 0.001)

    assert policy.costs() == pytest.approx((0.001, 0.001))
    assert policy.decide(queued=1500, rows=100, alone=15, alone_rows=1500) is not None


def test_batches_of_other_sizes_outweigh_the_anchors() -> None:
    policy = admission()
    policy.anchor(1, 0.0011)
    policy.anchor(64, 0.0074)
    for rows in (1, 64, 32, 100) * 25:
        policy.observe(rows, 3 * (0.001 + rows * 0.0001))  # the machine became 3x slower

    assert policy.costs()[1] == pytest.approx(0.0003, rel=0.1)
    for rows in (32, 64, 100):
        assert policy.batch_s(rows) == pytest.approx(3 * (0.001 + rows * 0.0001), rel=0.05)


def test_a_negative_slope_over_sizes_apart_is_a_flat_line_at_the_mean() -> None:
    policy = admission()
    for rows, seconds in [(8, 0.012), (16, 0.010), (12, 0.011)] * 5:
        policy.observe(rows, seconds)

    fixed, per_row = policy.costs()

    assert per_row == 0.0
    assert fixed == pytest.approx(0.011, rel=0.05)


def test_refuses_when_the_rows_ahead_would_take_longer_than_the_limit() -> None:
    policy = admission(max_wait_s=0.05)
    policy.observe(1, 0.01)  # 10 ms a row, all per-row

    assert policy.decide(queued=4, rows=1, running=1) is None  # 50 ms ahead: at the limit
    refusal = policy.decide(queued=5, rows=1, running=1)  # 60 ms ahead

    assert refusal is not None
    assert not refusal.too_large
    assert refusal.wait_s == pytest.approx(0.06)
    assert refusal.retry_after_s == 1


def test_retry_after_is_the_estimated_wait_rounded_up_in_whole_seconds() -> None:
    policy = admission(max_wait_s=0.5)
    policy.observe(1, 0.1)

    refusal = policy.decide(queued=25, rows=1)  # 2.5 s ahead

    assert refusal is not None
    assert refusal.retry_after_s == 3


def test_the_estimate_follows_a_model_that_became_slower() -> None:
    policy = admission(max_wait_s=1.0)
    for _ in range(50):
        policy.observe(64, 0.000064)  # 1 µs a row
    assert policy.decide(queued=60_000, rows=100) is None

    for _ in range(200):
        policy.observe(64, 0.0064)  # now 100 µs a row: 60,000 rows are 6 s

    assert policy.decide(queued=60_000, rows=100) is not None


def test_64_clients_of_100_rows_fit_under_the_defaults_for_a_cheap_model() -> None:
    """The load the old fixed bound (4,096 rows) refused: 63 requests of 100 rows ahead."""
    policy = admission()
    for rows in (1, 20, 100, 100):
        policy.observe(rows, 0.0002 + rows * 0.000005)  # a logistic regression on ONNX

    assert policy.decide(queued=6_200, rows=100, running=100) is None


def test_malformed_observations_are_ignored() -> None:
    policy = admission()
    for record in (policy.observe, policy.anchor):
        record(0, 1.0)
        record(5, float("nan"))
        record(5, float("inf"))
        record(5, -1.0)

    assert policy.costs() == (0.0, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_wait_s": 0.0}, {"max_rows": 0}, {"batch_rows": 0}],
)
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        admission(**kwargs)


def test_a_request_of_a_batch_or_more_is_a_call_of_its_own() -> None:
    """Requests are never split: 63 queued requests of 100 rows and the one running, with
    batches of 64 rows, are 64 calls, not the 100 that 6,400 rows packed 64 to a batch would
    make; smaller requests still share calls."""
    policy = admission(max_wait_s=0.15)
    for rows in (1, 64, 1, 64):
        policy.observe(rows, 0.001 + rows * 0.00001)  # 1 ms a call, 10 µs a row

    assert policy.wait_s(6_400, alone=64, alone_rows=6_400) == pytest.approx(0.064 + 0.064)
    assert policy.wait_s(6_400) == pytest.approx(0.100 + 0.064)  # packed: 100 calls
    # 128 ms ahead, under the 150 ms limit (packed, it would have been 164 ms: refused)
    assert policy.decide(queued=6_300, rows=100, running=100, alone=63, alone_rows=6_300) is None
    # two requests of 100 rows and ten of 5 rows: three calls
    assert policy.wait_s(250, alone=2, alone_rows=200) == pytest.approx(0.003 + 0.0025)
