"""Prometheus metrics for the server, one :class:`Metrics` per app.

Every name starts with ``dockyard_`` and follows Prometheus conventions (base units,
``_total`` on counters). Labels are bounded by configuration, never by traffic: endpoint
(a deployment name), version (one of the few versions an endpoint routes to), HTTP status
only. Request ids, tokens, inputs and raw URL paths are never labels.

    dockyard_requests_total{endpoint, version, status}      counter
    dockyard_request_duration_seconds{endpoint, version}    histogram, 0.1 ms .. 10 s
    dockyard_batch_rows{endpoint}                           histogram, rows per model call
    dockyard_queue_rows{endpoint}                           gauge, rows waiting to batch
    dockyard_requests_in_flight                             gauge
    dockyard_model_load_seconds{endpoint}                   histogram, 10 ms .. 5 min
    dockyard_model_load_failures_total{endpoint}            counter
    dockyard_models_loaded                                  gauge
    dockyard_prediction_log_records_total                   counter, rows written to the log
    dockyard_prediction_log_dropped_total                   counter, rows dropped (buffer full)
    dockyard_out_of_range_rows_total{endpoint}              counter, rows with a numeric input
                                                            outside its training range
    dockyard_drift_share{endpoint}                          gauge, share of drifted features
    dockyard_feature_drift{endpoint, feature}               gauge, effect size per feature
    dockyard_accuracy{endpoint}                             gauge, from feedback labels
    dockyard_estimated_accuracy{endpoint}                   gauge, without labels (CBPE)
    dockyard_label_coverage{endpoint}                       gauge, share of rows labelled
    dockyard_alerts_firing{endpoint, rule}                  gauge, 1 while a rule fires

The monitoring gauges cover each endpoint's ``monitoring.window`` and are refreshed every
``DOCKYARD_MONITOR_INTERVAL_S``; ``feature`` and ``rule`` come from the deployment spec, so
they are bounded by configuration like ``endpoint``.

Requests that reach no endpoint (an unknown name, a malformed path) are counted under
``endpoint="unknown"`` by the caller; as a second guard, once ``max_series`` distinct
(endpoint, version, status) triples exist, new ones are counted as ``endpoint="other",
version="other"``, so a bug or an attacker cannot grow the series without bound (the
duration histogram's (endpoint, version) pairs are bound with those triples, so the same
cap holds them).

**The hot path.** Label lookups cost more than the observation itself, so each
(endpoint, version, status) triple is bound once and cached in a dict: a request is a dict
lookup and one observation. In one process the observation adds to plain numbers (a count,
a sum, a bucket found by ``bisect``: :class:`_Tally`) that a collector of the registry reads
when the metrics are collected, as the in-flight gauge reads a plain count: a
prometheus_client counter and histogram take a lock per value they add to, three a
request, and check their labels each time (benchmarks/RESULTS.md has the figures). The
server's event loop is the only writer. With several workers the values live in prometheus_client's
files (:class:`_Children`).

**Several worker processes** (``dockyard serve --workers N``). When
``PROMETHEUS_MULTIPROC_DIR`` is set (the server sets it to a fresh, empty folder before
forking workers), every process writes its values to memory-mapped files there and
:meth:`Metrics.render` merges them with ``MultiProcessCollector``: counters and histograms
sum over every process that ever ran, ``dockyard_requests_in_flight`` and
``dockyard_queue_rows`` sum over live processes (``livesum``), and
``dockyard_models_loaded`` is the largest count of any live process (``livemax``: each
worker loads the same models, so a sum would multiply them). When a worker exits, the
server calls :func:`mark_process_dead` so its live gauges stop counting. Process and GC
collectors exist only in single-process mode (prometheus_client cannot merge them).

**The import-order trap.** prometheus_client decides *when it is first imported* whether it
is in multiprocess mode (``prometheus_client.values.ValueClass``). BentoML hit this
(bentoml/BentoML#5056, fixed by #5602): its metrics module imported prometheus_client in
the parent before the workers set ``PROMETHEUS_MULTIPROC_DIR``, so every metric silently
stayed in per-process memory and ``/metrics`` showed none of them. Here this module never
imports prometheus_client at import time (``Metrics.__init__`` does), and if something else
imported it too early, ``Metrics.__init__`` re-derives the value class from the environment
before creating any metric. A test holds both.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from itertools import accumulate
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The classic Prometheus text format, what ``generate_latest`` writes and every Prometheus
server (and prometheus_client itself, when nothing is negotiated) understands."""

LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Request latency, 0.1 ms .. 10 s (a tabular model answers in well under a millisecond;
a cold or overloaded one in seconds)."""

ROW_BUCKETS: Final[tuple[float, ...]] = tuple(float(2**i) for i in range(15))
"""Rows per model call: 1, 2, 4 .. 16384."""

LOAD_BUCKETS: Final[tuple[float, ...]] = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Model load time, 10 ms .. 5 min (download, digest check, deserialise, warm up)."""

OTHER: Final = "other"


class Metrics:
    """The server's metrics, in a registry of their own (no global default registry, so
    several apps in one process never collide).

    Multiprocess mode follows ``PROMETHEUS_MULTIPROC_DIR`` as it is when this object is
    created; keep one ``Metrics`` per process in that mode (two would write the same
    series of the same per-process file).
    """

    def __init__(self, *, max_series: int = 1000) -> None:
        directory = os.environ.get(MULTIPROC_ENV) or None
        if directory is not None and not os.path.isdir(directory):
            raise ValueError(f"{MULTIPROC_ENV}={directory!r} is not a directory")
        _match_value_class(multiprocess=directory is not None)

        import prometheus_client as prom

        self.multiprocess_dir = directory
        self.max_series = max_series
        self.registry: CollectorRegistry = prom.CollectorRegistry(auto_describe=True)
        # in multiprocess mode values live in files; render() collects them, so the metrics
        # themselves are not registered anywhere
        target = None if directory else self.registry
        if directory is None:
            prom.ProcessCollector(registry=self.registry)
            prom.PlatformCollector(registry=self.registry)
            prom.GCCollector(registry=self.registry)

        # the request count and latency: plain tallies in one process (see the module
        # docstring), prometheus_client's own children in the multiprocess files
        self._request_series: dict[tuple[str, str, int], _Tally | _Children] = {}
        self._overflow_series: dict[int, _Tally | _Children] = {}
        self._latencies: dict[tuple[str, str], _Latency] = {}
        self.requests: Counter | None = None
        self.request_duration: Histogram | None = None
        if directory is None:
            self.registry.register(_RequestCollector(self))
        else:
            self.requests = prom.Counter(REQUESTS, REQUESTS_HELP, REQUEST_LABELS, registry=None)
            self.request_duration = prom.Histogram(
                DURATION, DURATION_HELP, REQUEST_LABELS[:2], buckets=LATENCY_BUCKETS, registry=None
            )
        self.batch_rows: Histogram = prom.Histogram(
            "dockyard_batch_rows",
            "Rows per model call after adaptive batching.",
            ["endpoint"],
            buckets=ROW_BUCKETS,
            registry=target,
        )
        self.queue_rows: Gauge = prom.Gauge(
            "dockyard_queue_rows",
            "Rows waiting in the batching queue.",
            ["endpoint"],
            registry=target,
            multiprocess_mode="livesum",
        )
        self.in_flight: Gauge = prom.Gauge(
            "dockyard_requests_in_flight",
            "Requests being handled right now.",
            registry=target,
            multiprocess_mode="livesum",
        )
        self._in_flight = 0
        if directory is None:  # a plain count, read when collected (see request_started)
            self.in_flight.set_function(lambda: self._in_flight)
        self.model_load: Histogram = prom.Histogram(
            "dockyard_model_load_seconds",
            "Time to load an endpoint's model version and warm it up, ready to serve.",
            ["endpoint"],
            buckets=LOAD_BUCKETS,
            registry=target,
        )
        self.model_load_failures: Counter = prom.Counter(
            "dockyard_model_load_failures",
            "Model version loads that failed (the endpoint keeps serving what it had).",
            ["endpoint"],
            registry=target,
        )
        self.models_loaded: Gauge = prom.Gauge(
            "dockyard_models_loaded",
            "Model versions loaded and ready to serve.",
            registry=target,
            multiprocess_mode="livemax",
        )
        self.log_records: Counter = prom.Counter(
            "dockyard_prediction_log_records",
            "Prediction rows written to the prediction log.",
            registry=target,
        )
        self.log_dropped: Counter = prom.Counter(
            "dockyard_prediction_log_dropped",
            "Prediction rows dropped because the log's buffer was full or storage failed.",
            registry=target,
        )
        self.out_of_range: Counter = prom.Counter(
            "dockyard_out_of_range_rows",
            "Answered rows with a numeric input outside its training range (reference "
            "profile's min..max).",
            ["endpoint"],
            registry=target,
        )

        def monitoring_gauge(name: str, text: str, labels: list[str]) -> Gauge:
            return prom.Gauge(
                name, text, labels, registry=target, multiprocess_mode="livemostrecent"
            )

        self.drift_share = monitoring_gauge(
            "dockyard_drift_share",
            "Share of an endpoint's features that drifted in its monitoring window.",
            ["endpoint"],
        )
        self.feature_drift = monitoring_gauge(
            "dockyard_feature_drift",
            "Drift effect size of one feature in the endpoint's monitoring window.",
            ["endpoint", "feature"],
        )
        self.accuracy = monitoring_gauge(
            "dockyard_accuracy",
            "Accuracy from feedback labels in the endpoint's monitoring window.",
            ["endpoint"],
        )
        self.estimated_accuracy = monitoring_gauge(
            "dockyard_estimated_accuracy",
            "Accuracy estimated without labels (confidence-based) in the monitoring window.",
            ["endpoint"],
        )
        self.label_coverage = monitoring_gauge(
            "dockyard_label_coverage",
            "Share of the monitoring window's predictions that have a feedback label.",
            ["endpoint"],
        )
        self.alerts_firing = monitoring_gauge(
            "dockyard_alerts_firing",
            "1 while an alert rule fires, 0 otherwise.",
            ["endpoint", "rule"],
        )
        self.monitor_pass = monitoring_gauge(
            "dockyard_monitor_pass_seconds",
            "Seconds the last refresh of the monitoring gauges took (computed on idle CPU: "
            "a long refresh means the cores were busy).",
            [],
        )
        self._batch_series: dict[str, Histogram] = {}
        self._queue_series: dict[str, Gauge] = {}

    # --- hot path -----------------------------------------------------------------------

    def observe_request(self, endpoint: str, version: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency. ``version`` is ``""`` when none was
        served (for example a validation error before routing)."""
        series = self._request_series.get((endpoint, version, status))
        if series is None:
            series = self._bind_request(endpoint, version, status)
        series.observe(seconds)

    def observe_batch(self, endpoint: str, rows: int) -> None:
        """Record the size of one model call."""
        child = self._batch_series.get(endpoint)
        if child is None:
            child = self._batch_series[endpoint] = self.batch_rows.labels(endpoint)
        child.observe(rows)

    def set_queue(self, endpoint: str, rows: int) -> None:
        """Set how many rows wait in an endpoint's batching queue."""
        child = self._queue_series.get(endpoint)
        if child is None:
            child = self._queue_series[endpoint] = self.queue_rows.labels(endpoint)
        child.set(rows)

    def request_started(self) -> None:
        """One more request in flight. In one process a plain count the gauge reads when
        collected (the server calls this on its event loop only): a gauge's increment takes
        a lock, twice a request. With several workers each one's value is in its file."""
        if self.multiprocess_dir is None:
            self._in_flight += 1
        else:
            self.in_flight.inc()

    def request_finished(self) -> None:
        if self.multiprocess_dir is None:
            self._in_flight -= 1
        else:
            self.in_flight.dec()

    # --- model lifecycle ----------------------------------------------------------------

    def observe_load(self, endpoint: str, seconds: float | None, *, ok: bool) -> None:
        """Record one model load for ``endpoint``: its duration when it succeeded, a failure
        otherwise (``seconds`` may be ``None`` for a failure)."""
        if ok and seconds is not None:
            self.model_load.labels(endpoint).observe(seconds)
        elif not ok:
            self.model_load_failures.labels(endpoint).inc()

    def set_models_loaded(self, count: int) -> None:
        self.models_loaded.set(count)

    # --- monitoring ---------------------------------------------------------------------

    def observe_log(self, written: int, dropped: int) -> None:
        """Count rows written to, and dropped from, the prediction log since the last call."""
        if written:
            self.log_records.inc(written)
        if dropped:
            self.log_dropped.inc(dropped)

    def observe_out_of_range(self, endpoint: str, rows: int) -> None:
        """Count answered rows with an input outside the training range (a deployed
        endpoint's name only: the request reached one of its models)."""
        self.out_of_range.labels(endpoint).inc(rows)

    def set_monitoring(self, endpoint: str, figures: dict[str, float | None]) -> None:
        """Set an endpoint's monitoring gauges; ``None`` leaves a gauge as it was."""
        gauges = {
            "drift_share": self.drift_share,
            "accuracy": self.accuracy,
            "estimated_accuracy": self.estimated_accuracy,
            "label_coverage": self.label_coverage,
        }
        for key, gauge in gauges.items():
            value = figures.get(key)
            if value is not None:
                gauge.labels(endpoint).set(value)

    def set_feature_drift(self, endpoint: str, feature: str, value: float) -> None:
        self.feature_drift.labels(endpoint, feature).set(value)

    def set_monitor_pass(self, seconds: float) -> None:
        self.monitor_pass.set(seconds)

    def set_alert(self, endpoint: str, rule: str, firing: bool) -> None:
        self.alerts_firing.labels(endpoint, rule).set(1 if firing else 0)

    # --- exposition ---------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type, for ``GET /metrics``."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE

    def _bind_request(self, endpoint: str, version: str, status: int) -> _Tally | _Children:
        if len(self._request_series) >= self.max_series:
            # past the cap nothing new is cached either, so memory stays bounded too
            overflow = self._overflow_series.get(status)
            if overflow is None:
                overflow = self._overflow_series[status] = self._series(OTHER, OTHER, status)
            return overflow
        series = self._series(endpoint, version, status)
        self._request_series[(endpoint, version, status)] = series
        return series

    def _series(self, endpoint: str, version: str, status: int) -> _Tally | _Children:
        """A new (endpoint, version, status) series; its latency is the (endpoint,
        version)'s, shared by every status."""
        if self.requests is not None and self.request_duration is not None:  # multiprocess
            return _Children(
                self.requests.labels(endpoint, version, str(status)),
                self.request_duration.labels(endpoint, version),
            )
        latency = self._latencies.get((endpoint, version))
        if latency is None:
            latency = self._latencies[(endpoint, version)] = _Latency((endpoint, version))
        return _Tally((endpoint, version, str(status)), latency)


REQUESTS: Final = "dockyard_requests"
REQUESTS_HELP: Final = "Inference requests answered, by endpoint, version served and HTTP status."
DURATION: Final = "dockyard_request_duration_seconds"
DURATION_HELP: Final = (
    "Time from receiving an inference request to sending its response, by endpoint and "
    "version served."
)
REQUEST_LABELS: Final = ["endpoint", "version", "status"]


class _Latency:
    """One (endpoint, version)'s request durations in one process: how many fell in each
    bucket (not cumulative; the last is above the largest bound) and their sum."""

    __slots__ = ("buckets", "created", "labels", "total")

    def __init__(self, labels: tuple[str, str]) -> None:
        self.labels = labels
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.created = time.time()


class _Tally:
    """One (endpoint, version, status)'s requests in one process, counted by the event loop
    in plain numbers (:class:`_RequestCollector` reads them when collected)."""

    __slots__ = ("count", "created", "labels", "latency")

    def __init__(self, labels: tuple[str, str, str], latency: _Latency) -> None:
        self.labels = labels
        self.latency = latency
        self.count = 0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.count += 1
        latency = self.latency
        latency.total += seconds
        # a bucket holds the values up to its bound, inclusive, as prometheus_client's do
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1


class _Children(NamedTuple):
    """One series' prometheus_client children (multiprocess mode: their values in files)."""

    counter: Counter
    histogram: Histogram

    def observe(self, seconds: float) -> None:
        self.counter.inc()
        self.histogram.observe(seconds)


class _RequestCollector:
    """The request count and latency of one process's tallies, as prometheus_client's
    counter and histogram would expose them (their ``_created`` samples too)."""

    def __init__(self, metrics: Metrics) -> None:
        from prometheus_client.utils import floatToGoString

        self._metrics = metrics
        self._bounds = [
            floatToGoString(bound)  # type: ignore[no-untyped-call]
            for bound in (*LATENCY_BUCKETS, float("inf"))
        ]

    def describe(self) -> Iterable[Metric]:
        return self._families([], [])

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        tallies = [*metrics._request_series.values(), *metrics._overflow_series.values()]
        return self._families(tallies, list(metrics._latencies.values()))  # type: ignore[arg-type]

    def _families(self, tallies: list[_Tally], latencies: list[_Latency]) -> list[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.samples import Sample

        counts = CounterMetricFamily(REQUESTS, REQUESTS_HELP, labels=REQUEST_LABELS)
        for tally in tallies:
            counts.add_metric(tally.labels, tally.count, created=tally.created)
        durations = HistogramMetricFamily(DURATION, DURATION_HELP, labels=REQUEST_LABELS[:2])
        for latency in latencies:
            cumulative = accumulate(latency.buckets)  # +Inf, the last, is the count
            buckets = list(zip(self._bounds, cumulative, strict=True))
            durations.add_metric(latency.labels, buckets, latency.total)
            named = dict(zip(REQUEST_LABELS[:2], latency.labels, strict=True))
            durations.samples.append(Sample(f"{DURATION}_created", named, latency.created))
        return [counts, durations]


def mark_process_dead(pid: int) -> None:
    """Tell the multiprocess files that worker ``pid`` has exited, so its live gauges
    (in-flight, queue, models loaded) stop counting. Call it from the process that
    supervises the workers; a no-op without ``PROMETHEUS_MULTIPROC_DIR``."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _match_value_class(*, multiprocess: bool) -> None:
    """Make prometheus_client's value class agree with the environment, whenever it was
    first imported (see the module docstring)."""
    from prometheus_client import values

    if bool(getattr(values.ValueClass, "_multiprocess", False)) != multiprocess:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "LOAD_BUCKETS",
    "MULTIPROC_ENV",
    "ROW_BUCKETS",
    "Metrics",
    "mark_process_dead",
]
