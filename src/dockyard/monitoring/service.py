"""The monitoring service: windows of the prediction log in, drift and performance out.

One :class:`Monitor` serves the CLI (``dockyard monitor ...``), the control plane
(``/api/monitoring/...``) and the server's periodic watcher; it reads the log through
:class:`~dockyard.monitoring.store.MonitoringStore` and the reference profiles from the
registry, is handed each endpoint's policy (:class:`~dockyard.monitoring.policy.Policies`:
it never reads deployments), and hands the numbers to the pure modules (``drift``,
``performance``).

Which reference: a window may hold several versions (a swap, later a canary); drift is
measured against the reference profile of the version that served the most recent
prediction in the window unless ``version`` is given, and performance is always reported per
version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from dockyard.errors import InvalidRequestError, NotFoundError
from dockyard.monitoring.slices import (
    buckets,
    by_version,
    classes_of,
    latest,
    quantile,
    variant_figures,
    window_meta,
)
from dockyard.monitoring.store import INPUT_PREFIX, MonitoringStore
from dockyard.windows import Window, parse_window

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.monitoring.alerts import AlertRule
    from dockyard.monitoring.policy import DriftPolicy, Policies
    from dockyard.registry import Registry
    from dockyard.schema.profile import ReferenceProfile

OUTPUT_COLUMNS = [
    "time",
    "model",
    "version",
    "prediction",
    "score",
    "proba",
    "classes",
]
"""What performance needs: no inputs (a day of a 20-feature endpoint is mostly inputs), no
request ids (the feedback join uses them inside the query), and probabilities only where a
label arrived (:data:`LABELLED_ONLY`)."""

LABELLED_ONLY = ("proba",)

DRIFT_COLUMNS = ["time", "model", "version", "prediction", "score"]
"""What drift and the range check read besides every ``input.*`` column: not the request ids,
probabilities and class lists, which become one Python object per row (most of a read's
cost, and the serving process's monitor pass reads a window every interval)."""


class Monitor:
    """Drift, performance and alert values for an endpoint's logged predictions."""

    def __init__(
        self,
        registry: Registry,
        store: MonitoringStore,
        *,
        policies: Policies,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_rows: int | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.policies = policies
        self.clock = clock
        self.max_rows = max_rows  # a uniform sample of at most this many rows per window
        self._profiles: dict[str, dict[str, Any] | None] = {}

    # --- inputs ----------------------------------------------------------------------------

    def window(self, text: str) -> Window:
        return parse_window(text, now=self.clock())

    def frame(
        self,
        endpoint: str,
        window: Window,
        *,
        with_feedback: bool = False,
        columns: list[str] | None = None,
        labelled_only: tuple[str, ...] = (),
        role: str | None = "primary",
        inputs: bool = False,
    ) -> pd.DataFrame:
        """Logged rows of ``role``: ``primary`` (online), ``batch`` (jobs), ``None``: both;
        ``inputs`` adds every input column to ``columns``."""
        return self.store.predictions(
            endpoint,
            window,
            with_feedback=with_feedback,
            sample=self.max_rows,
            columns=columns,
            labelled_only=labelled_only,
            role=role,
            inputs=inputs,
        )

    def profile(self, model: str, version: str) -> dict[str, Any] | None:
        """A version's stored reference profile (cached: versions are immutable)."""
        ref = f"{model}@{version}"
        if ref not in self._profiles:
            try:
                self._profiles[ref] = self.registry.get_profile(ref)
            except NotFoundError:
                self._profiles[ref] = None
        return self._profiles[ref]

    def check_endpoint(self, endpoint: str) -> None:
        if self.policy(endpoint) is None and endpoint not in self.store.endpoints():
            raise NotFoundError(
                f"No endpoint named {endpoint!r} is deployed or has logged predictions.",
                hint="List endpoints with: dockyard deployments",
            )

    # --- drift -----------------------------------------------------------------------------

    def drift(
        self,
        endpoint: str,
        window: Window,
        *,
        baseline: Window | None = None,
        version: str | None = None,
        policy: DriftPolicy | None = None,
        role: str | None = "primary",
    ) -> dict[str, Any]:
        """Drift of the window's inputs and predictions (rows of ``role``, as :meth:`frame`)
        against the serving version's reference profile, or the ``baseline`` window."""
        from dockyard.monitoring.drift import compare

        self.check_endpoint(endpoint)
        frame = self.frame(endpoint, window, role=role, columns=DRIFT_COLUMNS, inputs=True)
        meta = window_meta(window, frame)
        if frame.empty:
            return {"endpoint": endpoint, "window": meta, "baseline": None, "report": None}
        if version is not None:
            seen = sorted(frame["version"].dropna().unique().tolist())
            frame = frame[frame["version"] == version]
            if frame.empty:
                raise NotFoundError(
                    f"Endpoint {endpoint!r} logged no predictions from version {version!r} "
                    f"in {window.describe()}.",
                    hint=f"Versions it logged then: {', '.join(map(str, seen))}.",
                )
        served = latest(frame, "version")
        model = latest(frame, "model")
        policy = policy or self.policy(endpoint)
        profile = self.profile(model, served)
        if baseline is None:
            if profile is None:
                raise InvalidRequestError(
                    f"{model}@{served} has no reference profile to compare with.",
                    hint="Register it with a sample, or compare with an earlier window "
                    "(--baseline 2d).",
                )
            from dockyard.schema.profile import ReferenceProfile

            reference = ReferenceProfile.from_dict(profile)
            described = f"reference profile of {model}@{served}"
        else:
            reference = self._window_reference(endpoint, baseline, profile, role)
            described = f"window {baseline.describe()}"
        features = _features(frame)
        wanted = [name for name in reference.features if name in features.columns]
        extra = [name for name in features.columns if name not in reference.features]
        report = compare(
            reference,
            features[wanted + extra] if wanted or extra else features,
            predictions=_prediction_series(frame, reference),
            policy=policy,
            importance=(profile or {}).get("importance"),
        )
        return {
            "endpoint": endpoint,
            "model": model,
            "version": served,
            "versions": sorted(frame["version"].dropna().unique().tolist()),
            "window": meta,
            "baseline": described,
            "report": report.to_dict(),
        }

    def _window_reference(
        self, endpoint: str, baseline: Window, profile: dict[str, Any] | None, role: str | None
    ) -> ReferenceProfile:
        from dockyard.monitoring.drift import reference_from_frame

        earlier = self.frame(
            endpoint, baseline, role=role, columns=[*DRIFT_COLUMNS, "classes"], inputs=True
        )
        if earlier.empty:
            raise InvalidRequestError(
                f"The baseline window ({baseline.describe()}) holds no predictions.",
                hint="Pick a baseline window that saw traffic, or compare with the reference.",
            )
        features = _features(earlier)
        kinds = {name: _kind(features[name], profile, name) for name in features.columns}
        numeric_prediction = earlier["classes"].isna().all()
        predictions = earlier["score"] if numeric_prediction else earlier["prediction"]
        return reference_from_frame(
            features,
            kinds,
            predictions=predictions.reset_index(drop=True),
            prediction_kind="numeric" if numeric_prediction else "categorical",
        )

    def drift_over_time(
        self, endpoint: str, window: Window, *, every: str = "hour", role: str | None = "primary"
    ) -> list[dict[str, Any]]:
        """Drift share per tumbling window (hour or day) against the reference profile."""
        from dockyard.monitoring.drift import compare
        from dockyard.schema.profile import ReferenceProfile

        frame = self.frame(endpoint, window, role=role, columns=DRIFT_COLUMNS, inputs=True)
        out: list[dict[str, Any]] = []
        if frame.empty:
            return out
        policy = self.policy(endpoint)
        for start, end, part in buckets(frame, every):
            profile = self.profile(latest(part, "model"), latest(part, "version"))
            if profile is None:
                continue
            reference = ReferenceProfile.from_dict(profile)
            report = compare(reference, _features(part), policy=policy).to_dict()
            out.append(
                {
                    "start": start,
                    "end": end,
                    "rows": len(part),
                    "drift_share": report["drift_share"],
                    "features": {f["feature"]: f["effect_size"] for f in report["features"]},
                    "drifted": [f["feature"] for f in report["features"] if f["drifted"]],
                }
            )
        return out

    def policy(self, endpoint: str) -> DriftPolicy | None:
        """The endpoint's drift policy; ``None`` when it is not deployed."""
        return self.policies.drift_policy(endpoint)

    # --- performance -----------------------------------------------------------------------

    def performance(
        self,
        endpoint: str,
        window: Window,
        *,
        every: str | None = None,
        role: str | None = "primary",
    ) -> dict[str, Any]:
        """Performance from feedback labels, per version (and per tumbling window), over the
        rows of ``role`` (as :meth:`frame`)."""
        self.check_endpoint(endpoint)
        frame = self.frame(
            endpoint,
            window,
            with_feedback=True,
            columns=OUTPUT_COLUMNS,
            labelled_only=LABELLED_ONLY,
            role=role,
        )
        result: dict[str, Any] = {
            "endpoint": endpoint,
            "window": window_meta(window, frame),
            "versions": {},
            "estimated": {},
        }
        for version, part in by_version(frame):
            result["versions"][version] = self._performance(part)
            estimate = self._estimate(part)
            if estimate is not None:
                result["estimated"][version] = estimate
        if every is not None:
            result["over_time"] = [
                {"start": start, "end": end, "version": version, **self._performance(part)}
                for start, end, bucket in buckets(frame, every)
                for version, part in by_version(bucket)
            ]
            result["estimated_over_time"] = [
                {"start": start, "end": end, "version": version, **estimate}
                for start, end, bucket in buckets(frame, every)
                for version, part in by_version(bucket)
                if (estimate := self._estimate(part)) is not None
            ]
        return result

    def performance_by(
        self, endpoint: str, window: Window, column: str, *, role: str | None = "primary"
    ) -> dict[str, Any]:
        """Performance per group of one logged input column (:mod:`.groups`), over the rows
        of ``role`` (as :meth:`frame`)."""
        from dockyard.monitoring.groups import group_performance

        self.check_endpoint(endpoint)

        def read(name: str) -> pd.DataFrame:
            return self.frame(
                endpoint, window, with_feedback=True, columns=[*OUTPUT_COLUMNS, name], role=role
            )

        return group_performance(read, endpoint, column, by_version, self._performance)

    def _performance(self, part: pd.DataFrame) -> dict[str, Any]:
        from dockyard.monitoring.performance import (
            classification_performance,
            regression_performance,
        )

        labelled = part[part["label"].notna()]
        classes = classes_of(part)
        if classes is not None or part["score"].isna().all():
            probabilities = None
            if classes is not None and len(labelled) and labelled["proba"].notna().all():
                probabilities = np.asarray(labelled["proba"].tolist(), dtype=np.float64)
            return classification_performance(
                labelled["label"].astype(str).tolist(),
                labelled["prediction"].astype(str).tolist(),
                probabilities=probabilities,
                classes=classes,
                predictions_total=len(part),
            )
        labelled = labelled[labelled["label_value"].notna()]
        return regression_performance(
            labelled["label_value"].to_numpy(dtype=np.float64),
            labelled["score"].to_numpy(dtype=np.float64),
            predictions_total=len(part),
        )

    def _estimate(self, part: pd.DataFrame) -> dict[str, Any] | None:
        """Confidence-based accuracy estimate for a binary classifier's rows (no labels)."""
        from dockyard.monitoring.performance import estimate_accuracy
        from dockyard.schema.calibration import Calibration

        classes = classes_of(part)
        if classes is None or len(classes) != 2 or part["score"].isna().any():
            return None
        profile = self.profile(latest(part, "model"), latest(part, "version")) or {}
        stored = profile.get("calibration")
        calibration = None
        if stored is not None and stored.get("positive") == classes[1]:
            calibration = Calibration.from_dict(stored)
        positive = (part["prediction"].astype(str) == classes[1]).to_numpy()
        return estimate_accuracy(
            part["score"].to_numpy(dtype=np.float64),
            predicted_positive=positive,
            calibration=calibration,
        )

    # --- variants and shadows -------------------------------------------------------------

    def compare(self, endpoint: str, window: Window) -> dict[str, Any]:
        """Each served version side by side (requests, errors, latency, accuracy with its 95%
        interval and a one-sided test against the first variant), and each shadow's
        agreement with what the caller was actually served."""
        from dockyard.stats import two_proportion_test, wilson_interval

        self.check_endpoint(endpoint)
        primary = self.store.predictions(endpoint, window, with_feedback=True, only_ok=False)
        variants: list[dict[str, Any]] = []
        for version, part in by_version(primary):
            figures = variant_figures(part)
            correct, labelled = figures["correct"], figures["labelled"]
            variants.append(
                {
                    "version": version,
                    **figures,
                    "accuracy": correct / labelled if labelled else None,
                    "accuracy_ci": wilson_interval(correct, labelled),
                }
            )
        variants.sort(key=lambda v: -v["requests"])
        for variant in variants[1:]:
            first = variants[0]
            variant["p_value"] = two_proportion_test(
                first["correct"], first["labelled"], variant["correct"], variant["labelled"]
            )
        shadows = []
        mirrored = self.store.predictions(endpoint, window, only_ok=False, role="shadow")
        answered_primary = primary[primary["status"] == 200][
            ["request_id", "row", "prediction", "score"]
        ]
        for version, part in by_version(mirrored):
            requests = part[part["row"] == 0]
            ok = part[part["status"] == 200]
            paired = ok.merge(answered_primary, on=["request_id", "row"], suffixes=("", "_served"))
            both = paired[paired["score"].notna() & paired["score_served"].notna()]
            latency = requests["latency_ms"].to_numpy(np.float64)
            shadows.append(
                {
                    "version": version,
                    "requests": len(requests),
                    "errors": int((requests["status"] >= 500).sum()),
                    "compared_rows": len(paired),
                    "agreement": float((paired["prediction"] == paired["prediction_served"]).mean())
                    if len(paired)
                    else None,
                    "mean_abs_difference": float(
                        (both["score"] - both["score_served"]).abs().mean()
                    )
                    if len(both)
                    else None,
                    "p50_latency_ms": quantile(latency, 0.5),
                    "p99_latency_ms": quantile(latency, 0.99),
                }
            )
        return {
            "endpoint": endpoint,
            "window": window_meta(window, primary),
            "variants": variants,
            "shadows": shadows,
        }

    # --- alert values ----------------------------------------------------------------------

    def value(self, endpoint: str, rule: AlertRule, *, dropped: float = 0.0) -> float | None:
        """The rule's metric over its window (``None``: not enough data)."""
        window = self.window(rule.window)
        metric = rule.metric
        if metric == "dropped_records":
            return dropped
        if metric == "out_of_range_rate":
            return self.out_of_range_rate(endpoint, window, min_rows=rule.min_rows)
        if metric in ("error_rate", "p99_latency_ms"):
            frame = self.store.predictions(
                endpoint,
                window,
                columns=["request_id", "row", "time", "status", "latency_ms"],
                only_ok=False,
            )
            requests = frame[frame["row"] == 0]
            if len(requests) < rule.min_rows:
                return None
            if metric == "error_rate":
                return float((requests["status"] >= 500).mean())
            return float(np.quantile(requests["latency_ms"].to_numpy(np.float64), 0.99))
        if metric in ("drift_share", "feature_drift"):
            result = self.drift(endpoint, window)
            report = result["report"]
            if report is None or report["rows"] < rule.min_rows:
                return None
            if metric == "drift_share":
                return float(report["drift_share"])
            for feature in report["features"]:
                if feature["feature"] == rule.feature:
                    size = feature["effect_size"]
                    return None if size is None else float(size)
            return None
        if metric == "group_accuracy_gap":
            from dockyard.monitoring.groups import accuracy_gap

            assert rule.by is not None  # the rule's validation requires it
            return accuracy_gap(self.performance_by(endpoint, window, rule.by), rule.min_rows)
        performance = self.performance(endpoint, window)
        if metric == "accuracy":
            figures = [p for p in performance["versions"].values() if p.get("labelled")]
            labelled = int(sum(p["labelled"] for p in figures))
            if labelled < rule.min_rows:
                return None
            total = sum(
                p["accuracy"] * p["labelled"] for p in figures if p.get("accuracy") is not None
            )
            return float(total) / labelled
        estimates = [
            e for e in performance["estimated"].values() if e.get("estimated_accuracy") is not None
        ]
        rows = int(sum(e["rows"] for e in estimates))
        if rows < rule.min_rows:
            return None
        return float(sum(e["estimated_accuracy"] * e["rows"] for e in estimates)) / rows

    def out_of_range_rate(
        self, endpoint: str, window: Window, *, min_rows: int = 1
    ) -> float | None:
        """The share of the window's answered rows with a numeric input outside the training
        range of the version that answered it (its reference profile's min..max, as the
        per-response ``warnings`` use); ``None`` below ``min_rows`` rows."""
        frame = self.frame(endpoint, window, columns=DRIFT_COLUMNS, inputs=True)
        if len(frame) < max(min_rows, 1):
            return None
        outside = np.zeros(len(frame), dtype=bool)
        models = frame["model"].to_numpy(object)
        versions = frame["version"].to_numpy(object)
        for model, version in set(zip(models.tolist(), versions.tolist(), strict=True)):
            where = (models == model) & (versions == version)
            features = (self.profile(str(model), str(version)) or {}).get("features", {})
            for name, feature in features.items():
                column = f"{INPUT_PREFIX}{name}"
                low, high = feature.get("min"), feature.get("max")
                if feature.get("kind") != "numeric" or low is None or high is None:
                    continue
                if column not in frame or frame[column].dtype.kind not in "iuf":
                    continue  # datetimes and text are not ranged
                values = frame[column].to_numpy(np.float64)
                with np.errstate(invalid="ignore"):
                    outside |= where & ((values < low) | (values > high))
        return float(outside.mean())

    # --- the report ------------------------------------------------------------------------

    def report_data(self, endpoint: str, window: Window, *, every: str = "hour") -> dict[str, Any]:
        """Everything :func:`dockyard.monitoring.report.render_report` draws, the endpoint's
        alert rule states included."""
        from dockyard.monitoring.alert_store import AlertStates  # SQLAlchemy, for this read

        drift = self.drift(endpoint, window)
        performance = self.performance(endpoint, window, every=every)
        meta = drift["window"]
        meta["description"] = window.describe()
        return {
            "endpoint": endpoint,
            "generated_at": self.clock().isoformat(timespec="seconds"),
            "model": drift.get("model"),
            "versions": drift.get("versions", []),
            "window": meta,
            "baseline": drift["baseline"] or "",
            "drift": drift["report"],
            "drift_over_time": self.drift_over_time(endpoint, window, every=every),
            "performance_over_time": performance.get("over_time", []),
            "estimated_over_time": performance.get("estimated_over_time", []),
            "alerts": AlertStates(self.registry.db).list(endpoint),
        }


# --- frame helpers -------------------------------------------------------------------------


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in frame.columns if str(c).startswith(INPUT_PREFIX)]
    features = frame[columns].reset_index(drop=True)
    features.columns = [str(c)[len(INPUT_PREFIX) :] for c in columns]
    return features


def _prediction_series(frame: pd.DataFrame, reference: ReferenceProfile) -> pd.Series | None:
    if reference.prediction is None:
        return None
    column = "score" if reference.prediction.kind == "numeric" else "prediction"
    series: pd.Series = frame[column].reset_index(drop=True)
    return series


def _kind(series: pd.Series, profile: dict[str, Any] | None, name: str) -> Any:
    if profile is not None and name in profile.get("features", {}):
        return profile["features"][name]["kind"]
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return "numeric" if numeric else "categorical"
