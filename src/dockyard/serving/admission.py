"""Admission to a model's queue: bounded by how long the queued rows will take, not by a count.

A fixed row bound is wrong both ways: for a cheap model it refuses load the model would clear
in milliseconds (64 clients sending 100 rows each queue 6,400 rows, a few milliseconds of
work for a logistic regression), and for a slow one it lets callers wait for seconds before
refusing anyone. :class:`Admission` instead estimates the wait a new request would have —
the rows ahead of it at the model's measured cost — and refuses only when that exceeds
``max_wait_s``. A hard ``max_rows`` cap still bounds the queue's memory whatever the rate.

The cost model
--------------
A batch of ``n`` rows costs about ``fixed + per_row * n``: the fixed part is the call itself
(and, for a model on the compute threads, the hand-off), the per-row part the arithmetic.
Both are fitted by least squares over the measured batches, each weighted by an exponential
moving average (``smoothing`` is the weight of the newest batch), so the estimate follows
the model as load, batch sizes and the machine change. Neither part is below zero: a slope
that comes out negative (noise over sizes close together) is a flat line at the mean, and
when the batches' time grows faster than their rows (a compute thread that waits longer for
the GIL in larger batches) the fit is the best line through the origin, not the steeper line
cut off at zero, which would overstate every batch and a large request most of all. While
every batch measured has had about the same size the two parts cannot be told apart and the
whole cost is taken as per-row (``mean seconds / mean rows``): the cautious reading.

Anchors. Traffic of one kind forms batches of one narrow range of sizes (one-row requests:
8-16 rows), and a slope fitted over such a range is mostly noise — a collection, the GIL's
hand-offs — yet it is what a large request's estimate is extrapolated with: 0.5-1 ms "a
row" from batches of one-row requests put fifteen 100-row requests past a 1 s bound that
they clear in a tenth of it. So the server also times two calls far apart in size at
warm-up (one row, a full batch) and gives them to :meth:`Admission.anchor`: they stay in
the fit at a constant weight (``ANCHOR_WEIGHT`` batches each) while the measured batches'
weights decay. They inform the slope only: their spread of sizes and its covariance with
time are pooled with the measured batches' (each about its own means), and the measured
batches set the level (the fixed part), which load moves. So the slope rests on sizes far
apart until live batches of other sizes, once seen, outweigh the anchors.

The queue drains in batches of at most ``batch_rows``, except that a request of
``batch_rows`` rows or more is a batch of its own (requests are never split), as is the batch
running now: with ``k`` such batches holding ``r`` rows among the ``q`` rows ahead, the wait
is ``(k + ceil((q - r) / batch_rows)) * fixed + q * per_row``. Until anything is measured or
anchored the estimate is zero: only ``max_rows`` applies.

Pure: no clock, no I/O; the batcher times its batches and reports them with
:meth:`Admission.observe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SAME_SIZE_VARIANCE = 0.25
"""Below this variance of the measured batch sizes (rows²) the fixed and per-row costs are
not told apart."""
ANCHOR_WEIGHT = 2.0
"""How many measured batches an anchor weighs, for good (the measured ones total about
``1 / smoothing``: 20 by default)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not queued: ``too_large`` (it alone exceeds ``max_rows``: a 413), or
    overload (a 503), with the estimated wait that refused it (for ``Retry-After``)."""

    too_large: bool
    wait_s: float

    @property
    def retry_after_s(self) -> int:
        """Whole seconds a client should wait before retrying (at least 1)."""
        return max(1, math.ceil(self.wait_s))


class Admission:
    """Estimates a model's queue wait from its measured batches and admits or refuses."""

    __slots__ = (
        "_anchors",
        "_fixed",
        "_per_row",
        "_smoothing",
        "_sx",
        "_sxx",
        "_sxy",
        "_sy",
        "_weight",
        "batch_rows",
        "max_rows",
        "max_wait_s",
    )

    def __init__(
        self, *, max_wait_s: float, max_rows: int, batch_rows: int, smoothing: float = 0.05
    ) -> None:
        if not max_wait_s > 0:
            raise ValueError(f"max_wait_s must be more than 0, not {max_wait_s}")
        if max_rows < 1 or batch_rows < 1:
            raise ValueError("max_rows and batch_rows must be at least 1")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        self.max_wait_s = max_wait_s
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self._weight = 0.0  # running sums of weight, x, y, x², xy (x: rows, y: seconds)
        self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._smoothing = smoothing
        self._anchors = (0.0, 0.0, 0.0, 0.0, 0.0)  # the same sums over the anchors, weighted
        self._fixed = self._per_row = 0.0  # the fit, redone at each observation

    def observe(self, rows: int, seconds: float) -> None:
        """Fold in one measured batch of ``rows`` rows that took ``seconds``."""
        if not _measured(rows, seconds):
            return
        keep = 1.0 - self._smoothing
        x, y = float(rows), float(seconds)
        self._weight = keep * self._weight + 1.0
        self._sx = keep * self._sx + x
        self._sy = keep * self._sy + y
        self._sxx = keep * self._sxx + x * x
        self._sxy = keep * self._sxy + x * y
        self._fixed, self._per_row = self._fit()

    def anchor(self, rows: int, seconds: float) -> None:
        """Keep a batch of ``rows`` rows that took ``seconds``, timed on a quiet server, in
        the fit for good at ``ANCHOR_WEIGHT`` (see the module's docstring)."""
        if not _measured(rows, seconds):
            return
        x, y, w = float(rows), float(seconds), ANCHOR_WEIGHT
        weight, sx, sy, sxx, sxy = self._anchors
        self._anchors = (weight + w, sx + w * x, sy + w * y, sxx + w * x * x, sxy + w * x * y)
        self._fixed, self._per_row = self._fit()

    def costs(self) -> tuple[float, float]:
        """``(fixed seconds per batch, seconds per row)``; ``(0, 0)`` before any batch or
        anchor."""
        return self._fixed, self._per_row

    def batch_s(self, rows: int) -> float:
        """Estimated seconds one batch of ``rows`` rows takes (0 before any batch)."""
        return self._fixed + rows * self._per_row

    def _fit(self) -> tuple[float, float]:
        anchored, ax, ay, axx, axy = self._anchors
        weight, sx, sy, sxx, sxy = self._weight, self._sx, self._sy, self._sxx, self._sxy
        if weight == 0.0:  # only the anchors: they are the batches
            weight, sx, sy, sxx, sxy = anchored, ax, ay, axx, axy
            anchored = 0.0
        mean_x, mean_y = sx / weight, sy / weight
        # the spread of sizes and its covariance with time: the batches' about their own
        # means and, pooled with them, the anchors' about theirs (their slope, not their
        # level, which the batches set)
        spread = sxx - sx * mean_x
        covariance = sxy - sx * mean_y
        if anchored:
            spread += axx - ax * ax / anchored
            covariance += axy - ax * ay / anchored
        if spread < SAME_SIZE_VARIANCE * (weight + anchored):
            return 0.0, mean_y / mean_x  # sizes alike: all of it per row, the cautious reading
        # a row costs nothing at least: a slope that comes out below zero (noise over sizes
        # close together) is the least squares with slope >= 0, a flat line at the mean
        slope = max(covariance / spread, 0.0)
        fixed = mean_y - slope * mean_x
        if fixed >= 0:
            return fixed, slope
        # a call costs nothing at least: the best line through the origin (the least squares
        # with fixed >= 0), not the steeper one cut off at zero, which overstates every batch
        # and more so the larger ones
        return 0.0, sxy / sxx

    def wait_s(self, rows_ahead: int, alone: int = 0, alone_rows: int = 0) -> float:
        """Estimated seconds until ``rows_ahead`` queued or running rows are done, ``alone``
        batches of them run on their own (``alone_rows`` rows in all) and the rest packed
        ``batch_rows`` to a batch."""
        if rows_ahead <= 0:
            return 0.0
        packed = rows_ahead - alone_rows
        if packed > 0:
            alone += -(-packed // self.batch_rows)  # ceil, in integers
        return alone * self._fixed + rows_ahead * self._per_row

    def decide(
        self, queued: int, rows: int, running: int = 0, alone: int = 0, alone_rows: int = 0
    ) -> Refusal | None:
        """``None`` to queue a request of ``rows`` rows behind ``queued`` waiting rows and a
        batch of ``running`` rows in progress, else why not; ``alone`` of the queued requests
        (``alone_rows`` rows) have ``batch_rows`` rows or more, a batch each. The cap counts
        queued rows (what waits in memory); the wait counts the running batch too."""
        if rows > self.max_rows:
            return Refusal(too_large=True, wait_s=0.0)
        if running:  # the batch in progress is one call whatever its size
            alone += 1
            alone_rows += running
        wait = self.wait_s(queued + running, alone, alone_rows)
        if queued + rows > self.max_rows or wait > self.max_wait_s:
            return Refusal(too_large=False, wait_s=wait)
        return None


def _measured(rows: int, seconds: float) -> bool:
    """Whether a timing is one to fit: rows, and a finite, non-negative time."""
    return rows > 0 and seconds >= 0 and not math.isinf(seconds)


__all__ = ["Admission", "Refusal"]
