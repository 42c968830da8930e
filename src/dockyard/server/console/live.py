"""Live traffic from the server's own Prometheus metrics: requests/s, error rate and latency
quantiles over the last minutes, per endpoint and per variant (the version served).

:class:`LiveTraffic` keeps a short ring of samples of the counters it reads (one per poll,
at most one a second, ten minutes at most) and answers rates as differences between the
newest sample and the one a window earlier. Latency quantiles come from the request
duration histogram (labelled by endpoint and version), per endpoint (its variants' buckets
summed) and per variant, like counts and errors. Everything but :meth:`LiveTraffic.sample`
is pure.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Snapshot = dict[tuple[str, ...], float]


def parse(text: str) -> Snapshot:
    """The counters the page needs from a Prometheus exposition: request counts by
    (endpoint, version, status) and duration buckets by (endpoint, version, le)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: Snapshot = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("dockyard_requests", "dockyard_requests_total"):
            for s in family.samples:
                if s.name == "dockyard_requests_total":
                    key = ("req", s.labels["endpoint"], s.labels["version"], s.labels["status"])
                    found[key] = found.get(key, 0.0) + s.value
        elif family.name == "dockyard_request_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    version = s.labels.get("version", "")
                    bucket = ("le", s.labels["endpoint"], version, s.labels["le"])
                    found[bucket] = found.get(bucket, 0.0) + s.value
    return found


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of cumulative histogram ``buckets`` (upper bound → count),
    interpolated linearly within its bucket, as Prometheus's ``histogram_quantile`` does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            share = 0.0 if inside <= 0 else (rank - below) / inside
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def rates(newer: Snapshot, older: Snapshot, seconds: float) -> dict[str, Any]:
    """Per endpoint and per variant over ``seconds``: requests/s, error rate (5xx and 4xx
    answers over all), and p50 and p99 latency in milliseconds."""
    endpoints: dict[str, dict[str, Any]] = {}
    seconds = max(seconds, 1e-9)
    for key, value in newer.items():
        if key[0] != "req":
            continue
        _, endpoint, version, status = key
        delta = max(0.0, value - older.get(key, 0.0))
        entry = endpoints.setdefault(endpoint, {"requests": 0.0, "errors": 0.0, "variants": {}})
        variant = entry["variants"].setdefault(version or "-", {"requests": 0.0, "errors": 0.0})
        failed = delta if not status.startswith("2") else 0.0
        for target in (entry, variant):
            target["requests"] += delta
            target["errors"] += failed
    buckets: dict[str, dict[str, dict[float, float]]] = {}  # endpoint → version → le → n
    for key, value in newer.items():
        if key[0] == "le":
            _, endpoint, version, bound = key
            per = buckets.setdefault(endpoint, {}).setdefault(version or "-", {})
            upper = float(bound)
            per[upper] = per.get(upper, 0.0) + max(0.0, value - older.get(key, 0.0))
    result = {}
    for endpoint, entry in sorted(endpoints.items()):
        variants = buckets.get(endpoint, {})
        summed: dict[float, float] = {}
        for per in variants.values():
            for upper, count in per.items():
                summed[upper] = summed.get(upper, 0.0) + count
        result[endpoint] = {
            **_figures(entry, seconds),
            **_latency(summed),
            "variants": {
                version: {**_figures(variant, seconds), **_latency(variants.get(version, {}))}
                for version, variant in sorted(entry["variants"].items())
            },
        }
    return result


def _latency(buckets: dict[float, float]) -> dict[str, float | None]:
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    return {
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
    }


def _figures(entry: dict[str, Any], seconds: float) -> dict[str, Any]:
    requests = entry["requests"]
    return {
        "rps": round(requests / seconds, 3),
        "requests": int(requests),
        "error_rate": None if requests == 0 else round(entry["errors"] / requests, 4),
    }


class LiveTraffic:
    """Samples of the metrics, and rates over a window of them."""

    def __init__(
        self,
        read: Callable[[], str],
        *,
        clock: Callable[[], float] = time.monotonic,
        keep_s: float = 600.0,
    ) -> None:
        self.read = read
        self.clock = clock
        self.samples: deque[tuple[float, Snapshot]] = deque(maxlen=int(keep_s) + 1)

    def sample(self) -> None:
        """Read the metrics now, unless the newest sample is under a second old."""
        now = self.clock()
        if self.samples and now - self.samples[-1][0] < 1.0:
            return
        self.samples.append((now, parse(self.read())))

    def figures(self, window_s: float = 60.0, *, points: int = 60) -> dict[str, Any]:
        """Rates over the last ``window_s`` seconds (or as far back as the samples go) and,
        per endpoint, a series of requests/s between successive samples for a sparkline."""
        self.sample()
        if len(self.samples) < 2:
            return {"window_s": 0.0, "endpoints": {}, "series": {}}
        newest_t, newest = self.samples[-1]
        older_t, older = self.samples[0]
        for at, snapshot in self.samples:
            if at >= newest_t - window_s:
                older_t, older = at, snapshot
                break
        if older_t == newest_t:
            older_t, older = self.samples[-2]
        series: dict[str, list[float]] = {}
        recent = list(self.samples)[-(points + 1) :]
        for (t0, s0), (t1, s1) in itertools.pairwise(recent):
            step = rates(s1, s0, t1 - t0)
            for endpoint in step:
                series.setdefault(endpoint, [])
            for endpoint, values in series.items():
                values.append(step.get(endpoint, {}).get("rps", 0.0))
        return {
            "window_s": round(newest_t - older_t, 1),
            "endpoints": rates(newest, older, newest_t - older_t),
            "series": series,
        }


__all__ = ["LiveTraffic", "parse", "quantile", "rates"]
