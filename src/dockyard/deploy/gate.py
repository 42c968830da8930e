"""Promotion gates: is a candidate version at least as good as the one it would replace?

A gate evaluates a candidate and (optionally) a baseline version on the same labelled rows,
checks that the candidate's signature is compatible with the baseline's, and tests each
requirement the caller wrote (the grammar is :mod:`dockyard.deploy.requirements`). Metrics:

- classification: ``accuracy precision recall f1 roc_auc log_loss``, as
  :func:`dockyard.monitoring.performance.classification_performance` defines them (labels
  and predictions compared as text, probabilities in the model's class order);
- regression: ``mae rmse r2`` (:func:`~dockyard.monitoring.performance.regression_performance`);
- ``p50_latency_ms`` and ``p99_latency_ms``: single-row ``predict`` latency, measured
  in-process on the version as :meth:`Registry.load` gives it (signature validation
  included), after a warm-up, candidate and baseline interleaved so that a busy machine
  slows both alike.

A metric that cannot be computed (ROC AUC with one class in the labels, log loss without
probabilities) fails its requirement and says why.

Signature compatibility: a column the candidate requires (not nullable) that the baseline's
signature lacks fails the gate unless new columns are allowed — callers built for the
baseline do not send it — and so does a changed output kind. Other differences are notes.

Recording a result and promoting on it is :mod:`dockyard.deploy.promotion`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast, get_args

from dockyard.deploy.fairness import check_sensitive, group_fairness, positive_class, worst
from dockyard.deploy.requirements import (
    CLASSIFICATION_METRICS,
    FAIRNESS_METRICS,
    LATENCY_METRICS,
    REGRESSION_METRICS,
    Requirement,
    Task,
    metrics_for,
    number_text,
    parse_requirement,
)
from dockyard.errors import InvalidRequestError, ModelLoadError, SchemaValidationError
from dockyard.schema.labels import label_text

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.registry import Registry, Version
    from dockyard.registry.loaded import RegisteredModel

__all__ = [
    "WARMUP_CALLS",
    "Check",
    "GateResult",
    "SignatureCheck",
    "check_signature",
    "evaluate_gate",
]

WARMUP_CALLS = 20
"""Single-row predictions each version makes before latency is measured."""


# --- signature compatibility (pure) --------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    """Whether the candidate accepts what callers of the baseline send and answers in kind.

    ``checked`` is false when there is no baseline or either version has no signature
    (``notes`` says which); such a check passes.
    """

    checked: bool
    passed: bool
    new_required: tuple[str, ...] = ()
    new_optional: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureCheck:
        """Inverse of :meth:`to_dict`; it passes exactly when it lists no problem."""
        lists = ("new_required", "new_optional", "removed", "problems", "notes")
        found = {key: tuple(str(item) for item in data.get(key) or ()) for key in lists}
        return cls(checked=bool(data["checked"]), passed=not found["problems"], **found)


def check_signature(
    candidate: Mapping[str, Any] | None,
    baseline: Mapping[str, Any] | None,
    *,
    allow_new_columns: bool = False,
) -> SignatureCheck:
    """Compare two versions' signature documents (``Version.signature``).

    Fails for required (non-nullable) candidate columns the baseline lacks, unless
    ``allow_new_columns``, and for a changed output kind. New nullable columns, removed
    columns, changed column types and changed classes are notes.
    """
    if candidate is None or baseline is None:
        missing = "the candidate" if candidate is None else "the baseline"
        return SignatureCheck(False, True, notes=(f"not checked: {missing} has no signature",))
    from dockyard.schema import Signature

    new, old = Signature.from_dict(candidate), Signature.from_dict(baseline)
    known = {column.name: column for column in old.columns}
    added = [column for column in new.columns if column.name not in known]
    required = tuple(column.name for column in added if not column.nullable)
    optional = tuple(column.name for column in added if column.nullable)
    removed = tuple(name for name in old.column_names if name not in set(new.column_names))
    problems: list[str] = []
    notes: list[str] = []
    if required:
        listed = _names(required)
        if allow_new_columns:
            notes.append(f"new required column(s) allowed: {listed}")
        else:
            problems.append(
                f"new required column(s) the baseline's callers do not send: {listed} "
                "(allow them explicitly if every caller has been updated)"
            )
    if optional:
        notes.append(f"new optional column(s): {_names(optional)}")
    if removed:
        notes.append(f"column(s) no longer used: {_names(removed)}")
    for column in new.columns:
        before = known.get(column.name)
        if before is not None and before.dtype != column.dtype:
            notes.append(f"column {column.name!r} changed from {before.dtype} to {column.dtype}")
    if new.output.kind != old.output.kind:
        problems.append(f"output changed from {old.output.kind} to {new.output.kind}")
    elif new.output.classes != old.output.classes:
        notes.append(
            f"classes changed from {list(old.output.classes or [])} "
            f"to {list(new.output.classes or [])}"
        )
    return SignatureCheck(
        True, not problems, required, optional, removed, tuple(problems), tuple(notes)
    )


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One requirement's outcome; ``reason`` says why it failed when a value was missing."""

    requirement: str
    metric: str
    candidate: float | None
    baseline: float | None
    threshold: float | None
    passed: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """Inverse of :meth:`to_dict`: the threshold and the verdict are recomputed from the
        requirement and the two values, never taken on trust."""
        requirement = parse_requirement(str(data["requirement"]))
        values = {key: _optional_float(data.get(key)) for key in ("candidate", "baseline")}
        metric = requirement.metric
        return _check(requirement, {metric: values["candidate"]}, {metric: values["baseline"]})


@dataclass(frozen=True)
class GateResult:
    """What a gate found. ``candidate`` and ``baseline`` are exact ``name@version``
    references; ``against`` is the baseline reference as given (``fraud@production``)."""

    candidate: str
    baseline: str | None
    against: str | None
    task: Task
    target: str
    checks: tuple[Check, ...]
    signature: SignatureCheck
    candidate_metrics: Mapping[str, float | None]
    baseline_metrics: Mapping[str, float | None] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    """Rows evaluated, unlabelled rows dropped, and the evaluated rows' fingerprint."""
    fairness: Mapping[str, Any] | None = None
    """Per sensitive column, each version's per-group figures and summaries."""

    @property
    def passed(self) -> bool:
        """Every requirement holds and the signatures are compatible."""
        return self.signature.passed and all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[str, ...]:
        """One line per failed requirement or signature problem."""
        failed = [
            f"{check.requirement}: {check.reason or _shortfall(check)}"
            for check in self.checks
            if not check.passed
        ]
        return (*failed, *(f"signature: {p}" for p in self.signature.problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (what ``dockyard gate --json`` prints and audit events keep)."""
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "against": self.against,
            "task": self.task,
            "target": self.target,
            "data": dict(self.data),
            "requirements": [check.to_dict() for check in self.checks],
            "signature": self.signature.to_dict(),
            "metrics": {
                "candidate": dict(self.candidate_metrics),
                "baseline": None if self.baseline_metrics is None else dict(self.baseline_metrics),
            },
            "failures": list(self.failures),
            "fairness": None if self.fairness is None else dict(self.fairness),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Inverse of :meth:`to_dict`, for a result sent over the API; a malformed one is an
        :class:`InvalidRequestError`. Verdicts are recomputed from the figures, not trusted."""
        try:
            task = data["task"]
            if task not in get_args(Task):
                raise ValueError(f"unknown task {task!r}")
            metrics = data["metrics"]
            baseline_metrics = metrics.get("baseline")
            return cls(
                candidate=str(data["candidate"]),
                baseline=None if data.get("baseline") is None else str(data["baseline"]),
                against=None if data.get("against") is None else str(data["against"]),
                task=task,
                target=str(data["target"]),
                checks=tuple(Check.from_dict(check) for check in data["requirements"]),
                signature=SignatureCheck.from_dict(data["signature"]),
                candidate_metrics=_metric_map(metrics["candidate"]),
                baseline_metrics=None
                if baseline_metrics is None
                else _metric_map(baseline_metrics),
                data=dict(data.get("data") or {}),
                fairness=None if data.get("fairness") is None else dict(data["fairness"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequestError(
                f"Malformed gate result: {exc!r}.",
                hint="Send the JSON that `dockyard gate --json` prints.",
            ) from None


def _shortfall(check: Check) -> str:
    return f"candidate {number_text(check.candidate)} vs threshold {number_text(check.threshold)}"


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _metric_map(values: Mapping[str, Any]) -> dict[str, float | None]:
    return {str(key): _optional_float(value) for key, value in values.items()}


# --- evaluation (loads models) -------------------------------------------------------------


def evaluate_gate(
    registry: Registry,
    candidate_ref: str,
    baseline_ref: str | None,
    data: pd.DataFrame,
    target: str,
    requirements: Iterable[Requirement],
    *,
    allow_new_columns: bool = False,
    latency_rows: int = 200,
    sensitive: Sequence[str] = (),
) -> GateResult:
    """Evaluate ``candidate_ref`` (and ``baseline_ref``) on ``data``, labels in ``target``.

    Everything that can be wrong with the request — no target column, a requirement on the
    baseline without one, a metric the candidate's task does not have, data lacking a column
    either version needs, non-numeric labels for a regression — raises
    :class:`InvalidRequestError` before any model is loaded. Rows with a missing label are
    left out (``data["unlabelled_rows_dropped"]``). ``sensitive`` columns add group fairness
    figures (:mod:`dockyard.deploy.fairness`). Nothing in the registry changes.
    """
    wanted = tuple(requirements)
    if target not in data.columns:
        raise InvalidRequestError(
            f"The gate data has no target column {target!r}.",
            hint=f"Its columns: {_names(data.columns)}. Name the column holding the labels.",
        )
    if baseline_ref is None:
        for requirement in wanted:
            if requirement.relative:
                raise InvalidRequestError(
                    f"Requirement '{requirement}' compares with the baseline, but no baseline "
                    "version was named.",
                    hint="Name one to gate against (e.g. fraud@production), or use a number.",
                )
    check_sensitive(sensitive, list(data.columns))
    if not sensitive and any(r.metric in FAIRNESS_METRICS for r in wanted):
        raise InvalidRequestError(
            "Fairness requirements need the sensitive columns.", hint="Add --sensitive COLUMNS."
        )
    if latency_rows < 1 and any(r.metric in LATENCY_METRICS for r in wanted):
        raise InvalidRequestError(
            f"Latency requirements need latency_rows >= 1, got {latency_rows}."
        )

    candidate = registry.get_version(candidate_ref)
    baseline = registry.get_version(baseline_ref) if baseline_ref is not None else None
    task = _task(candidate)
    for requirement in wanted:
        if requirement.metric not in metrics_for(task):
            if candidate.signature is None:
                kind = "registered without a sample, so its task is unknown"
            elif task == "other":
                kind = "neither a classifier nor a regressor by its signature"
            else:
                kind = f"a {task} model"
            raise InvalidRequestError(
                f"{candidate.ref} is {kind}; it has no {requirement.metric} "
                f"(requirement '{requirement}').",
                hint=f"Its metrics: {', '.join(metrics_for(task))}.",
            )
    labelled = data[data[target].notna()]
    if len(labelled) == 0:
        raise InvalidRequestError(
            f"The gate data has no labelled row: every {target!r} value is missing.",
            hint="Gate on rows whose labels are known.",
        )
    features = labelled.drop(columns=[target])
    for version in (candidate, baseline):
        if version is not None:
            _require_columns(features, version, target)
    labels = labelled[target]
    if task == "regression" or (baseline is not None and _task(baseline) == "regression"):
        _require_numeric(labels, target)
    signature = (
        check_signature(
            candidate.signature, baseline.signature, allow_new_columns=allow_new_columns
        )
        if baseline is not None
        else SignatureCheck(False, True, notes=("not checked: no baseline",))
    )

    from dockyard.schema import fingerprint

    models = [registry.load(candidate.ref)]
    if baseline is not None:
        models.append(registry.load(baseline.ref))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measured = [_metrics(model, features, labels) for model in models]
        if latency_rows > 0:
            for found, latency in zip(
                measured, _latency(models, features, latency_rows), strict=True
            ):
                found.update(latency)
        fairness = _fairness(models, features, labels, labelled, sensitive, measured)
    for found in measured:
        for name in LATENCY_METRICS:
            found.setdefault(name, None)
    candidate_metrics = measured[0]
    baseline_metrics = measured[1] if baseline is not None else None
    checks = tuple(_check(r, candidate_metrics, baseline_metrics) for r in wanted)
    identity = fingerprint(labelled)
    return GateResult(
        candidate=candidate.ref,
        baseline=baseline.ref if baseline is not None else None,
        against=baseline_ref,
        task=task,
        target=target,
        checks=checks,
        signature=signature,
        candidate_metrics=candidate_metrics,
        baseline_metrics=baseline_metrics,
        data={
            "rows": len(labelled),
            "unlabelled_rows_dropped": len(data) - len(labelled),
            "latency_rows": max(latency_rows, 0),
            "sha256": identity.sha256,
            "algorithm": identity.algorithm,
        },
        fairness=fairness,
    )


def _task(version: Version) -> Task:
    if version.signature is not None:
        kind = version.signature.get("output", {}).get("kind")
        if kind in get_args(Task):
            return cast(Task, kind)
    return "other"


def _names(columns: Iterable[Any], limit: int = 10) -> str:
    names = [str(c) for c in columns]
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "none"


def _require_columns(features: pd.DataFrame, version: Version, target: str) -> None:
    if version.signature is None:
        return
    needed = [str(column["name"]) for column in version.signature.get("columns", ())]
    present = {str(c) for c in features.columns}
    missing = [name for name in needed if name not in present]
    if missing:
        also = f" ({target!r} is the target column)" if target in missing else ""
        raise InvalidRequestError(
            f"The gate data lacks {len(missing)} column(s) that {version.ref} needs: "
            f"{_names(missing)}{also}.",
            hint="Gate on data with every input column of both versions.",
        )


def _require_numeric(labels: pd.Series[Any], target: str) -> None:
    import pandas as pd

    numbers = pd.to_numeric(labels, errors="coerce")
    bad = labels[numbers.isna()]
    if len(bad):
        raise InvalidRequestError(
            f"The target column {target!r} holds values that are not numbers "
            f"(e.g. {bad.iloc[0]!r}), but a regression model is gated.",
            hint="Regression labels must be numeric.",
        )


def _predict(model: RegisteredModel, features: pd.DataFrame, *, proba: bool = False) -> Any:
    """``predict`` (or ``predict_proba``) as served, signature-validated; on the model's own
    columns when the version has no signature. A model that raises is a ``ModelLoadError``."""
    if model.signature is not None:
        try:
            data = model.validate(features).data
        except SchemaValidationError as exc:
            raise SchemaValidationError(
                f"The gate data does not fit {model.version.ref}'s signature: {exc.message}",
                hint=exc.hint,
                details=exc.details,
            ) from None
    else:
        names = model.model.feature_names
        frame = features[list(names)] if names is not None else features
        data = frame if model.model.input_layout == "frame" else frame.to_numpy()
    try:
        return model.model.predict_proba(data) if proba else model.model.predict(data)
    except Exception as exc:  # not a failed gate (exit 1): the model itself is broken
        raise ModelLoadError(
            f"{model.version.ref} failed to predict on the gate data: {exc}",
            hint="Check that its framework versions match: "
            f"dockyard models show {model.version.ref}",
        ) from exc


def _metrics(
    model: RegisteredModel, features: pd.DataFrame, labels: pd.Series[Any]
) -> dict[str, float | None]:
    """The model's classification or regression metrics on the rows (none for ``other``)."""
    import numpy as np

    from dockyard.monitoring.performance import (
        classification_performance,
        regression_performance,
    )

    task = _task(model.version)
    if task == "other":
        return {}
    predictions = np.asarray(_predict(model, features))
    if task == "regression":
        import pandas as pd

        truth = pd.to_numeric(labels).to_numpy(dtype=np.float64)
        found = regression_performance(truth, predictions.astype(np.float64).ravel())
        return {name: found[name] for name in REGRESSION_METRICS}
    classes = model.classes
    if classes is None and model.signature is not None:
        classes = model.signature.output.classes
    names = None if classes is None else [str(label_text(c)) for c in classes]
    probabilities = None
    if names is not None and model.model.has_proba:
        probabilities = np.asarray(_predict(model, features, proba=True), dtype=np.float64)
    found = classification_performance(
        [str(label_text(v)) for v in labels.tolist()],
        [str(label_text(v)) for v in predictions.ravel().tolist()],
        probabilities=probabilities,
        classes=names,
    )
    return {name: found[name] for name in CLASSIFICATION_METRICS}


def _fairness(
    models: Sequence[RegisteredModel],
    features: pd.DataFrame,
    labels: pd.Series[Any],
    labelled: pd.DataFrame,
    sensitive: Sequence[str],
    measured: Sequence[dict[str, float | None]],
) -> dict[str, Any] | None:
    """Each version's per-group figures per sensitive column; the worst summaries go into
    its metrics, where requirements find them."""
    if not sensitive:
        return None
    import numpy as np

    truth = [str(label_text(v)) for v in labels.tolist()]
    per_column: dict[str, dict[str, Any]] = {column: {} for column in sensitive}
    for model, found, role in zip(models, measured, ("candidate", "baseline"), strict=False):
        classes = model.classes
        if classes is None and model.signature is not None:
            classes = model.signature.output.classes
        positive = positive_class(classes, model.version.ref)
        predicted = [str(label_text(v)) for v in np.asarray(_predict(model, features)).ravel()]
        figures = {c: group_fairness(truth, predicted, positive, labelled[c]) for c in sensitive}
        found.update(worst(figures))
        for column in sensitive:
            per_column[column][role] = figures[column]
    return per_column


def _latency(
    models: Sequence[RegisteredModel], features: pd.DataFrame, rows: int
) -> list[dict[str, float | None]]:
    """p50 and p99 single-row ``predict`` latency of each model, in milliseconds: a warm-up,
    then ``rows`` timed calls each, the models' order alternating from one row to the next."""
    import numpy as np

    singles = [features.iloc[[i]] for i in range(min(len(features), rows))]
    for model in models:
        for single in singles[:WARMUP_CALLS]:
            _predict(model, single)
    timings: list[list[int]] = [[] for _ in models]
    order = list(range(len(models)))
    for i in range(rows):
        single = singles[i % len(singles)]
        for k in order if i % 2 == 0 else order[::-1]:
            started = time.perf_counter_ns()
            _predict(models[k], single)
            timings[k].append(time.perf_counter_ns() - started)
    result: list[dict[str, float | None]] = []
    for samples in timings:
        milliseconds = np.asarray(samples, dtype=np.float64) / 1e6
        result.append(
            {
                "p50_latency_ms": float(np.percentile(milliseconds, 50)),
                "p99_latency_ms": float(np.percentile(milliseconds, 99)),
            }
        )
    return result


def _check(
    requirement: Requirement,
    candidate: Mapping[str, float | None],
    baseline: Mapping[str, float | None] | None,
) -> Check:
    metric = requirement.metric
    value = candidate.get(metric)
    base = None if baseline is None else baseline.get(metric)
    threshold = requirement.threshold(base)
    if value is None:
        reason = f"the candidate's {metric} could not be computed on this data"
    elif threshold is None:
        reason = f"the baseline's {metric} could not be computed on this data"
    else:
        return Check(
            str(requirement), metric, value, base, threshold, requirement.holds(value, threshold)
        )
    return Check(str(requirement), metric, value, base, threshold, False, reason)
