"""The registry service: registration and loading, composed from the metadata store, the
artifact store, the runtimes and the schema code.

Registration does the slow, fallible work first — serialise, reload, predict on the sample,
infer the signature and profile, write and verify the artifact — and only then commits the
version row, in one short transaction. A process killed at any point leaves either nothing
or a complete, verified version (an orphaned artifact at worst, never a dangling row).
"""

from __future__ import annotations

import math
import os
import platform
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dockyard.errors import (
    DockyardError,
    InvalidRequestError,
    ModelLoadError,
    UnsupportedModelError,
)
from dockyard.registry.artifacts import ArtifactStore
from dockyard.registry.audit import ChainReport
from dockyard.registry.database import Database
from dockyard.registry.events import EventLog
from dockyard.registry.refs import (
    ModelRef,
    check_alias,
    check_model_name,
    check_tag_key,
    check_tag_value,
)
from dockyard.registry.semver import BUMPS, Bump, SemVer
from dockyard.registry.store import MetadataStore
from dockyard.registry.types import Event, Model, NewVersion, Version
from dockyard.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.registry.loaded import RegisteredModel
    from dockyard.runtimes import Artifact, LoadedModel, Runtimes

_ROUND_TRIP_ROWS = 1000


class Registry:
    """Models, versions, aliases, tags and the audit trail, over SQL and an artifact store.

    Build one with :meth:`Registry.open` (from :class:`~dockyard.settings.Settings`), use it,
    then :meth:`close` it (or use it as a context manager).
    """

    def __init__(
        self,
        db: Database,
        artifacts: ArtifactStore,
        runtimes: Runtimes,
        *,
        actor: str,
        code_revision: str | None = None,
    ) -> None:
        self.db = db
        self.store = MetadataStore(db)
        self.event_log = EventLog(db)
        self.artifacts = artifacts
        self.runtimes = runtimes
        self.actor = actor
        self.code_revision = code_revision

    @classmethod
    def open(cls, settings: Settings | None = None) -> Registry:
        """Connect to the configured database (migrating it if needed) and artifact store."""
        from dockyard.runtimes import Runtimes

        settings = settings or Settings()
        db = Database(settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s)
        try:
            db.ensure_schema()
            artifacts = ArtifactStore(settings.resolved_artifact_url, settings.artifact_options)
        except BaseException:
            db.dispose()
            raise
        return cls(
            db,
            artifacts,
            Runtimes.discover(),
            actor=settings.user,
            code_revision=settings.code_revision,
        )

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- registration -------------------------------------------------------------------

    def register(
        self,
        model: Any,
        name: str,
        *,
        sample: Any = None,
        y: Any = None,
        version: str | None = None,
        bump: Bump = "patch",
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        aliases: Sequence[str] = (),
        trusted: bool = False,
        code_revision: str | None = None,
        accelerate: bool = True,
    ) -> Version:
        """Register a fitted model object, or a model file/MLflow directory given as a path.

        ``sample`` (a DataFrame, array, records, column dict, or a table file path) gives the
        signature, the reference profile and the data fingerprint; ``y`` (labels, or the name
        of a column of ``sample``) is used for the fingerprint and class labels. ``version``
        registers an explicit semantic version; otherwise the highest existing one is bumped.
        With ``accelerate`` (and a sample), an ONNX twin is built and kept when it predicts
        exactly like the model on the sample (classes equal, probabilities within 1e-6); the
        server then runs the twin.
        """
        check_model_name(name)
        explicit = SemVer.parse(version) if version is not None else None
        if bump not in BUMPS:
            raise InvalidRequestError(
                f"Unknown bump {bump!r}.", hint=f"Use one of: {', '.join(BUMPS)}."
            )
        for alias in aliases:
            check_alias(alias)
        clean_tags = {check_tag_key(str(k)): check_tag_value(v) for k, v in (tags or {}).items()}
        clean_metrics = _metrics(metrics or {})

        source, artifact = self._artifact(model, trusted=trusted)
        loaded = self._load_artifact(artifact, trusted=trusted)
        described = _describe_sample(
            loaded, sample, y, original=model if source == "object" else None
        )

        environment = {
            "python": platform.python_version(),
            **self.runtimes.get(artifact.runtime).environment(),
        }
        lineage: dict[str, Any] = {
            "source": source if source == "object" else Path(model).name,
            "object": _qualname(model) if source == "object" else None,
            "registered_by": self.actor,
            "code_revision": code_revision or self.code_revision,
            "data": described.fingerprint if described else None,
        }
        accelerated = (
            self._accelerate(loaded, described.model_input)
            if described is not None and accelerate
            else None
        )
        digest = self.artifacts.put(artifact.data)
        return self.store.add_version(
            name,
            NewVersion(
                runtime=artifact.runtime,
                digest=digest,
                size=len(artifact.data),
                trusted=bool(artifact.trusted_types),
                trusted_types=artifact.trusted_types,
                options=artifact.options,
                signature=described.signature if described else _declared(model, loaded),
                profile=described.profile if described else None,
                metrics=clean_metrics,
                params=_json_safe(dict(params or {})),
                tags=clean_tags,
                lineage=lineage,
                environment=environment,
                description=description,
                accelerated=accelerated,
            ),
            actor=self.actor,
            version=explicit,
            bump=bump,
            aliases=aliases,
            details={
                "trusted": trusted,
                "trusted_types": list(artifact.trusted_types),
                "source": lineage["source"],
            },
        )

    def _accelerate(self, loaded: LoadedModel, model_input: Any) -> dict[str, Any]:
        """Convert to ONNX and keep the twin only if it predicts identically on the sample."""
        from dockyard.runtimes.convert import convert_to_onnx

        if loaded.runtime == "onnx":
            return {"reason": "already ONNX"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conversion = convert_to_onnx(loaded, model_input)
        if conversion.artifact is None:
            return conversion.to_dict()
        digest = self.artifacts.put(conversion.artifact.data)
        return {**conversion.to_dict(), "digest": digest, "size": len(conversion.artifact.data)}

    def _artifact(self, model: Any, *, trusted: bool) -> tuple[str, Artifact]:
        if isinstance(model, str | os.PathLike):
            return "file", self.runtimes.artifact_from_path(Path(model), trusted=trusted)
        return "object", self.runtimes.artifact_from_object(model, trusted=trusted)

    def _load_artifact(self, artifact: Artifact, *, trusted: bool) -> LoadedModel:
        runtime = self.runtimes.get(artifact.runtime)
        try:
            return runtime.load(
                artifact.data, artifact.options, trusted=trusted or bool(artifact.trusted_types)
            )
        except DockyardError:
            raise
        except Exception as exc:
            from dockyard.runtimes._errors import framework_message

            raise ModelLoadError(
                f"The {artifact.runtime} runtime could not load the model back after "
                f"serialising it: {framework_message(exc)}",
                hint="The model cannot be registered in this format.",
            ) from exc

    # --- loading ------------------------------------------------------------------------

    def load(self, ref: str) -> RegisteredModel:
        """Load ``name``, ``name@version`` or ``name@alias``; the artifact's digest is checked
        before any byte reaches a framework."""
        from dockyard.registry.loaded import RegisteredModel

        version = self.store.get_version(ModelRef.parse(ref))
        data = self.artifacts.get(version.digest)
        runtime = self.runtimes.get(version.runtime)
        try:
            model = runtime.load(data, version.options, trusted=version.trusted)
        except DockyardError:
            raise
        except Exception as exc:
            from dockyard.runtimes._errors import framework_message

            raise ModelLoadError(
                f"{version.ref} passed its digest check but the {version.runtime} runtime "
                f"failed to load it: {framework_message(exc)}",
                hint=f"Check the installed framework versions against: "
                f"dockyard models show {version.ref}",
            ) from exc
        return RegisteredModel(version, model)

    # --- reads and small mutations ------------------------------------------------------

    def get_version(self, ref: str) -> Version:
        return self.store.get_version(ModelRef.parse(ref))

    def get_profile(self, ref: str) -> dict[str, Any] | None:
        return self.store.get_profile(ModelRef.parse(ref))

    def get_model(self, name: str) -> Model:
        return self.store.get_model(check_model_name(name))

    def list_models(self) -> list[Model]:
        return self.store.list_models()

    def list_versions(
        self, name: str, *, include_archived: bool = True, limit: int | None = None
    ) -> list[Version]:
        """Versions of ``name``, highest first (only the ``limit`` highest when given)."""
        return self.store.list_versions(
            check_model_name(name), include_archived=include_archived, limit=limit
        )

    def set_alias(
        self,
        ref: str,
        alias: str,
        *,
        actor: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Version:
        """Point ``alias`` at the version ``ref`` resolves to (moving it if it exists).

        ``actor`` overrides the registry's own (e.g. an API token's name); ``details`` is kept
        on the audit event (a promotion records the gate result that justified it)."""
        return self.store.set_alias(
            ModelRef.parse(ref), check_alias(alias), actor=actor or self.actor, details=details
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self.store.delete_alias(check_model_name(name), check_alias(alias), actor=self.actor)

    def set_tags(
        self, ref: str, tags: Mapping[str, str] | None = None, *, remove: Iterable[str] = ()
    ) -> dict[str, str]:
        clean = {check_tag_key(str(k)): check_tag_value(v) for k, v in (tags or {}).items()}
        return self.store.set_tags(
            ModelRef.parse(ref), actor=self.actor, set_tags=clean, remove=list(remove)
        )

    def set_description(self, ref: str, text: str) -> None:
        self.store.set_description(ModelRef.parse(ref), text, actor=self.actor)

    def archive(self, ref: str, *, actor: str | None = None) -> Version:
        """Archive a version (kept, hidden from ``latest``); aliased versions are refused.
        ``actor`` overrides the registry's own (the console names the token)."""
        return self.store.set_status(_exact(ref), "archived", actor=actor or self.actor)

    def restore(self, ref: str) -> Version:
        return self.store.set_status(_exact(ref), "active", actor=self.actor)

    def events(
        self, *, model: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        return self.event_log.list_events(model=model, action=action, limit=limit)

    def verify_events(self, anchors: Mapping[int, str] | None = None) -> ChainReport:
        """Check the audit trail's hash chain and append-only triggers: where the chain
        breaks (event id, what is wrong), or that it is intact up to its head. ``anchors``
        (event id → hash, heads reported earlier) must still be in it."""
        return self.event_log.verify_events(anchors)


def _exact(ref: str) -> ModelRef:
    parsed = ModelRef.parse(ref)
    if parsed.version is None and parsed.alias is None:
        raise InvalidRequestError(
            f"{ref!r} names a model, not a version.",
            hint=f"Name the version: {parsed.name}@1.2.0 or {parsed.name}@ALIAS.",
        )
    return parsed


_EXAMPLES = 100
"""Sample rows kept with the profile (as records) to warm servers up and check twins."""


@dataclass(frozen=True)
class _Described:
    """What registration learns from the sample."""

    signature: dict[str, Any]
    profile: dict[str, Any]
    fingerprint: dict[str, Any]
    model_input: Any


def _declared(model: Any, loaded: LoadedModel) -> dict[str, Any] | None:
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


def _describe_sample(
    loaded: LoadedModel, sample: Any, y: Any, *, original: Any
) -> _Described | None:
    """Signature, reference profile and fingerprint from the sample — after checking that the
    stored model predicts exactly like the original object on it."""
    if sample is None:
        return None
    import numpy as np

    from dockyard import schema

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
    importance = _importance(original, [str(c) for c in frame.columns])
    if importance is not None:
        profile["importance"] = importance
    return _Described(
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


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                f"Metric {key!r} is {value!r}, not a number.",
                hint="Metrics are numbers, e.g. metrics={'auc': 0.94}.",
            ) from None
        if not math.isfinite(number):
            raise InvalidRequestError(f"Metric {key!r} is {value!r}; metrics must be finite.")
        clean[check_tag_key(str(key))] = number
    return clean


def _json_safe(value: Any) -> Any:
    """Parameters as JSON: numpy scalars become Python numbers, anything else its repr."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item"):
        try:
            return _json_safe(value.item())
        except (TypeError, ValueError):
            pass
    return repr(value)


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
