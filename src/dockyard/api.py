"""The notebook API: one call per action, each opening the configured registry.

    import dockyard
    v = dockyard.register(model, "fraud", sample=X_train, y=y_train,
                          metrics={"auc": 0.94}, bump="minor")
    m = dockyard.load("fraud@production"); m.predict(df); m.predict_proba(df)
    scored = dockyard.score("fraud@production", df)            # a DataFrame
    dockyard.score("fraud@production", "in.parquet", out="out.parquet")  # files, streamed

Configuration comes from ``DOCKYARD_*`` environment variables, or pass ``settings=``.
For many calls in a row, open a :class:`~dockyard.registry.Registry` once instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import os

    import pandas as pd

    from dockyard.batch.service import JobSummary
    from dockyard.registry import Version
    from dockyard.registry.loaded import RegisteredModel
    from dockyard.registry.semver import Bump
    from dockyard.settings import Settings


def register(
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
    settings: Settings | None = None,
    intended_use: str = "",
    limitations: str = "",
) -> Version:
    """Register a fitted model (or a model file path) as a new version of ``name``.

    See :meth:`dockyard.registry.Registry.register` for every argument.
    """
    from dockyard.registry import Registry

    with Registry.open(settings) as registry:
        return registry.register(
            model,
            name,
            sample=sample,
            y=y,
            version=version,
            bump=bump,
            metrics=metrics,
            params=params,
            tags=tags,
            description=description,
            aliases=aliases,
            trusted=trusted,
            code_revision=code_revision,
            intended_use=intended_use,
            limitations=limitations,
        )


def load(ref: str, *, settings: Settings | None = None) -> RegisteredModel:
    """Load ``name``, ``name@version`` or ``name@alias``, digest-verified, ready to predict."""
    from dockyard.registry import Registry

    with Registry.open(settings) as registry:
        return registry.load(ref)


def score(
    ref: str,
    data: pd.DataFrame | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    keep: Sequence[str] = (),
    settings: Settings | None = None,
    **options: Any,
) -> pd.DataFrame | JobSummary:
    """Batch-score with ``ref``: a DataFrame in this process (returns the scored rows,
    indexed like the input; rejected rows are in ``result.attrs["rejects"]``), or a file,
    folder or glob streamed into ``out`` as ``dockyard score`` does (returns the job's
    summary). ``options`` are :func:`dockyard.batch.service.score`'s (``workers``,
    ``batch_rows``, ``max_reject_rate``, ``accelerate``...).

    Workers are separate processes, started without re-running the calling script.
    """
    import os

    from dockyard.batch import service

    if isinstance(data, (str, os.PathLike)):
        if out is None:
            from dockyard.errors import InvalidRequestError

            raise InvalidRequestError("Scoring files needs out= (the output file).")
        return service.score(
            ref, os.fspath(data), out=os.fspath(out), keep=keep, settings=settings, **options
        )
    return service.score_frame(ref, data, settings=settings, keep=keep, **options)
