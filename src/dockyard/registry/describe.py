"""What registration learns from a model's sample: the signature, the reference profile
(with calibration and global importance) and the data fingerprint, after checking that the
stored model predicts exactly like the original object on it; or, without a sample, the
signature an MLflow model directory declares."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError, UnsupportedModelError

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.runtimes import LoadedModel

_ROUND_TRIP_ROWS = 1000

_EXAMPLES = 100
"""Sample rows kept with the profile (as records) to warm servers up and check twins."""


@dataclass(frozen=True)
class Described:
    """What registration learns from the sample."""

    signature: dict[str, Any]
    profile: dict[str, Any]
    fingerprint: dict[str, Any]
    model_input: Any


def declared(model: Any, loaded: LoadedModel) -> dict[str, Any] | None:
    """Without a sample: the signature an MLflow model directory declares, if any."""
    if not isinstance(model, str | os.PathLike) or not Path(model).is_dir():
        return None
    from dockyard.runtimes.mlflow import declared_signature
    from dockyard.schema.declared import signature_from_mlflow

    declared = declared_signature(Path(model))
    if declared is None:
        return None
    classes = loaded.classes
    signature = signature_from_mlflow(
        *declared,
        layout=loaded.input_layout,
        classes=list(classes) if classes is not None else None,
        has_proba=loaded.has_proba,
    )
    return None if signature is None else signature.to_dict()


def describe_sample(loaded: LoadedModel, sample: Any, y: Any, *, original: Any) -> Described | None:
    """Signature, reference profile and fingerprint from the sample — after checking that the
    stored model predicts exactly like the original object on it."""
    if sample is None:
        return None
    import numpy as np

    from dockyard import schema
    from dockyard.explain.explainer import global_importance

    if isinstance(sample, str | os.PathLike):
        sample = schema.read_table(Path(sample))
    frame = schema.as_frame(sample, feature_names=None)
    if isinstance(y, str):
        if y not in frame.columns:
            raise InvalidRequestError(
                f"The sample has no target column {y!r}.",
                hint=f"Its columns: {', '.join(map(str, frame.columns))}.",
            )
        frame = frame.drop(columns=[y])
    features = loaded.feature_names
    if features is not None and not _positional(frame, features):
        missing = [name for name in features if name not in frame.columns]
        if missing:
            raise InvalidRequestError(
                f"The sample lacks {len(missing)} column(s) the model was trained on: "
                f"{', '.join(map(str, missing[:10]))}.",
                hint="Pass the training data (or a slice of it) as the sample.",
            )
        frame = frame[list(features)]
    elif features is not None:
        frame.columns = list(features)

    def model_input(data: pd.DataFrame) -> Any:
        return data if loaded.input_layout == "frame" else data.to_numpy()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictions = loaded.predict(model_input(frame))
    except Exception as exc:
        raise InvalidRequestError(
            f"The model could not predict on the sample: {exc}",
            hint="The sample must have the columns and types the model was trained on.",
        ) from exc
    if original is not None and hasattr(original, "predict"):
        head = frame.iloc[:_ROUND_TRIP_ROWS]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = np.asarray(original.predict(model_input(head)))
        except Exception:  # e.g. a raw booster wanting its own matrix type: nothing to compare
            expected = None
        if expected is not None and not _same(expected, np.asarray(predictions)[: len(head)]):
            raise UnsupportedModelError(
                "The stored model predicts differently from the object on the sample, so "
                "registering it would change its behaviour.",
                hint="Report this with the model's type; try another format meanwhile.",
            )

    def accepts(probe: pd.DataFrame) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded.predict(model_input(probe))
        except Exception:
            return False
        return True

    classes = loaded.classes
    if classes is None and y is not None and not isinstance(y, str) and loaded.has_proba:
        classes = sorted(set(np.asarray(y).tolist()))
    signature = schema.infer_signature(
        frame,
        layout=loaded.input_layout,
        predictions=predictions,
        classes=list(classes) if classes is not None else None,
        has_proba=loaded.has_proba,
        accepts=accepts,
    )
    profile = {
        **schema.build_profile(frame, signature, predictions).to_dict(),
        "examples": _examples(frame),
    }
    labels = sample[y] if isinstance(y, str) and hasattr(sample, "columns") else y
    calibration = _calibration(loaded, model_input(frame), labels, classes)
    if calibration is not None:
        profile["calibration"] = calibration
    columns = [str(c) for c in frame.columns]
    attribution = global_importance(loaded, columns, model_input(frame))  # drift ranks by it
    importance = (attribution or {}).get("share") or _importance(original, columns)
    if attribution is not None:
        profile["attribution"] = attribution
    if importance is not None:
        profile["importance"] = importance
    return Described(
        signature.to_dict(), profile, schema.fingerprint(frame).to_dict(), model_input(frame)
    )


def _calibration(
    loaded: LoadedModel, model_input: Any, labels: Any, classes: Sequence[Any] | None
) -> dict[str, Any] | None:
    """For a binary classifier with probabilities and known labels: how to calibrate its
    P(positive) before estimating accuracy without labels (see schema.calibration)."""
    if labels is None or classes is None or len(classes) != 2 or not loaded.has_proba:
        return None
    import numpy as np

    from dockyard.schema.calibration import fit_calibration
    from dockyard.schema.labels import label_text

    truth = [label_text(value) for value in np.asarray(labels).tolist()]
    positive = label_text(classes[1])
    if len(truth) < 20 or len(set(truth)) != 2 or positive not in truth:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = np.asarray(loaded.predict_proba(model_input), dtype=np.float64)[:, 1]
    except Exception:
        return None
    if len(scores) != len(truth):
        return None
    fitted = fit_calibration(scores, np.asarray([t == positive for t in truth], dtype=np.float64))
    return {"positive": positive, **fitted.to_dict()}


def _importance(model: Any, names: Sequence[str]) -> dict[str, float] | None:
    """Feature importances, when the model (or a pipeline's last step) exposes one per input
    column: ``feature_importances_``, else the mean absolute ``coef_``; normalised to sum 1.
    Drift reports rank features by them when drift is equal."""
    import numpy as np

    step = model.steps[-1][1] if hasattr(model, "steps") and model.steps else model
    values = getattr(step, "feature_importances_", None)
    if values is None and getattr(step, "coef_", None) is not None:
        values = np.abs(np.atleast_2d(np.asarray(step.coef_, dtype=np.float64))).mean(axis=0)
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).ravel()
    total = float(array.sum())
    if len(array) != len(names) or not np.isfinite(array).all() or total <= 0:
        return None
    return {name: float(value) / total for name, value in zip(names, array, strict=True)}


def _examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Up to ``_EXAMPLES`` rows spread over the sample, as JSON-safe records."""
    from dockyard.schema._json import to_json_value

    step = max(1, len(frame) // _EXAMPLES)
    rows = frame.iloc[::step].head(_EXAMPLES)
    names = [str(c) for c in rows.columns]
    return [
        {name: to_json_value(value) for name, value in zip(names, row, strict=True)}
        for row in rows.itertuples(index=False, name=None)
    ]


def _positional(frame: pd.DataFrame, features: Sequence[str]) -> bool:
    """An unnamed array sample (columns x0..xn) for a model that knows its feature names."""
    names = [str(c) for c in frame.columns]
    return names == [f"x{i}" for i in range(len(names))] and len(names) == len(features)


def _same(expected: Any, actual: Any) -> bool:
    import numpy as np

    if expected.shape != actual.shape:
        return False
    if expected.dtype.kind in "fc" and actual.dtype.kind in "fc":
        return bool(np.array_equal(expected, actual, equal_nan=True))
    return bool(np.array_equal(expected, actual))
