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
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dockyard.errors import (
    DockyardError,
    InvalidRequestError,
    ModelLoadError,
)
from dockyard.registry.artifacts import ArtifactStore
from dockyard.registry.audit import ChainReport
from dockyard.registry.database import Database
from dockyard.registry.describe import declared, describe_sample
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
    from dockyard.registry.loaded import RegisteredModel
    from dockyard.runtimes import Artifact, LoadedModel, Runtimes


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
        intended_use: str = "",
        limitations: str = "",
    ) -> Version:
        """Register a fitted model object, or a model file/MLflow directory given as a path.

        ``sample`` (a DataFrame, array, records, column dict, or a table file path) gives the
        signature, the reference profile and the data fingerprint; ``y`` (labels, or the name
        of a column of ``sample``) is used for the fingerprint and class labels. ``version``
        registers an explicit semantic version; otherwise the highest existing one is bumped.
        With ``accelerate`` (and a sample), an ONNX twin is built and kept when it predicts
        exactly like the model on the sample (classes equal, probabilities within 1e-6); the
        server then runs the twin. ``intended_use``, ``limitations``: for the model card.
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
        described = describe_sample(
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
        card = {"intended_use": intended_use, "limitations": limitations}
        return self.store.add_version(
            name,
            NewVersion(
                runtime=artifact.runtime,
                digest=digest,
                size=len(artifact.data),
                trusted=bool(artifact.trusted_types),
                trusted_types=artifact.trusted_types,
                options=artifact.options,
                signature=described.signature if described else declared(model, loaded),
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
                **({"card": card} if any(card.values()) else {}),
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
        return RegisteredModel(version, model, lambda: self.get_profile(version.ref))

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
