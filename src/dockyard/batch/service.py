"""The one batch-scoring action: :func:`score`, which the CLI and the Python API both call.

A job resolves what scores (a model reference, or what an endpoint's primary route serves
now) to one exact version, checks everything it can before any work (the input is there and
readable, has the signature's columns and the kept ones, the output can be written), then
streams the input through the engine, writing the output and the rejects under temporary
names. It publishes them only when every row was read and the share of rejected rows is
within ``max_reject_rate``; otherwise (or when interrupted) it removes them. Either way the
job is recorded in the audit trail (``batch.completed`` or ``batch.failed``: the input's
fingerprint, row counts, output, version, duration), which :func:`jobs` lists.

With ``log`` the scored rows also go to the prediction log under the endpoint, with role
``batch`` and the job's id (or each row's ``id_column`` value) as the request id, so drift,
performance and feedback work on batch outputs as on online ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from dockyard.batch.scorer import PREDICTION, PROBA_PREFIX, VERSION, Scored, Scorer
from dockyard.errors import InvalidRequestError, SchemaValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from dockyard.batch.engine import Tally
    from dockyard.batch.inputs import Input
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.records import Source
    from dockyard.registry import Registry
    from dockyard.settings import Settings

__all__ = ["DEFAULT_BATCH_ROWS", "JobSummary", "RejectRateError", "jobs", "score", "score_frame"]

DEFAULT_BATCH_ROWS = 65_536
"""Rows per record batch: large enough that per-batch costs vanish, small enough that a
few batches in flight per worker stay well under a gigabyte for tables of tens of columns."""

LOG_FLUSH_ROWS = 100_000
"""A hybrid job writes its prediction-log rows every this many rows (and at the end)."""

SMALL_INPUT_BYTES = 16 << 20
"""A text input smaller than this is scored in the calling process."""

BATCHES_PER_WORKER = 4
"""Each worker beyond the calling process needs this many of the input's batches: starting
one (imports, the model's load) takes a core for as long as scoring a few batches."""

ACTIONS = ("batch.completed", "batch.failed")

Progress = Callable[[int, "int | None"], None]
"""Called after each batch with (rows read so far, the input's rows when known)."""


class RejectRateError(InvalidRequestError):
    """More rows failed the signature than ``max_reject_rate`` allows; nothing published."""

    code = "reject_rate_exceeded"


@dataclass
class JobSummary:
    """What a job did: the summary printed at the end and stored in its audit event."""

    job_id: str
    status: str
    version: str
    runtime: str
    input: str
    fingerprint: str
    output: str | None
    rejects: str | None
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    engine: str = "local"
    workers: int = 1
    endpoint: str | None = None
    logged: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data["rows_per_s"] = round(self.rows_per_s, 1)
        data["seconds"] = round(self.seconds, 3)
        return data


def score(
    ref: str | None,
    source: str,
    *,
    out: str,
    settings: Settings | None = None,
    endpoint: str | None = None,
    keep: Sequence[str] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    workers: int | None = None,
    accelerate: bool = True,
    rejects: str | None = None,
    max_reject_rate: float | None = None,
    log: bool | None = None,
    id_column: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> JobSummary:
    """Score every row of ``source`` (a file, folder or glob; local or an fsspec URL) with
    ``ref`` or the version ``endpoint``'s primary route serves, into ``out``.

    Raises before any work, with nothing written, for a missing or unreadable input, an
    input without the signature's columns, or an unknown model or endpoint; raises
    :class:`RejectRateError` after the work when too many rows were rejected (nothing is
    published then either)."""
    from dockyard.batch.engine import Tally, cores
    from dockyard.batch.inputs import discover
    from dockyard.batch.output import Sink, rejects_location
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    settings = settings or Settings()
    _check_options(ref, endpoint, batch_rows, workers, max_reject_rate, engine)
    log = endpoint is not None if log is None else log
    if log and endpoint is None:
        raise InvalidRequestError(
            "Logging a job's predictions needs the endpoint they belong to.",
            hint="Score with --endpoint NAME, or leave --log off.",
        )
    workers = workers or cores()
    with Registry.open(settings) as registry:
        exact, revision = _resolve(registry, ref, endpoint)
        found = discover(source, storage_options)
        workers = _useful_workers(found, workers, batch_rows)
        scorer = Scorer.open(
            registry,
            exact,
            accelerate=accelerate,
            workers=workers,
            keep=keep,
            id_column=id_column,
            for_log=log,
            load=engine == "local",  # on Ray the workers load it
        )
        _check_columns(scorer, found, source)
        sink = Sink(out, storage_options)
        sink.check()
        reject_sink = Sink(rejects or rejects_location(out), storage_options)
        if {sink.path, reject_sink.path} & set(found.files) or sink.path == reject_sink.path:
            raise InvalidRequestError(
                "The output or rejects file would replace an input file (or each other).",
                hint="Write the output to another name.",
            )
        summary = JobSummary(
            job_id=f"job-{uuid.uuid4().hex[:12]}",
            status="running",
            version=exact,
            runtime=scorer.runtime,
            input=source,
            fingerprint=found.fingerprint(),
            output=None,
            rejects=None,
            engine=engine,
            workers=workers,
            endpoint=endpoint,
        )
        prediction_log = _open_log(settings, batch_rows) if log else None
        log_source = _log_source(scorer, endpoint, revision) if log and endpoint else None
        tally = Tally()
        summary.extra["batches"] = tally  # where they were scored (tests, benchmarks)
        started = time.perf_counter()
        try:
            results = _results(
                engine, found, scorer, settings, exact, accelerate, workers, batch_rows,
                ray_address, keep, id_column, log, tally,
            )  # fmt: skip
            total = found.rows()
            for result in results:
                sink.write(result.output)
                if result.rejects is not None:
                    reject_sink.write(result.rejects)
                summary.rows_in += result.rows
                summary.rows_scored += result.output.num_rows
                summary.rows_rejected += result.rejected
                if prediction_log is not None and log_source is not None:
                    _record(prediction_log, log_source, summary, result)
                _check_rate(summary, max_reject_rate, total, final=False)
                if progress is not None:
                    progress(summary.rows_in, total)
            _check_rate(summary, max_reject_rate, total, final=True)
            if prediction_log is not None:
                prediction_log.flush()
                summary.logged = prediction_log.written
            summary.output = sink.publish()
            if summary.rows_rejected:
                summary.rejects = reject_sink.publish()
            else:
                reject_sink.discard()
        except BaseException as exc:
            sink.discard()
            reject_sink.discard()
            _finish(registry, summary, started, exc)
            raise
        _finish(registry, summary, started)
        return summary


def score_frame(
    ref: str,
    frame: pd.DataFrame,
    *,
    settings: Settings | None = None,
    keep: Sequence[str] = (),
    accelerate: bool = True,
) -> pd.DataFrame:
    """Score a DataFrame in this process: the scored rows, indexed like the input, with the
    ``keep`` columns, the prediction, one probability column per class and the version.
    Rows that fail the signature are left out and listed in ``result.attrs["rejects"]``
    (a DataFrame: input position, every problem as JSON).

    Like a file job, it is recorded in the audit trail (``batch.completed`` or
    ``batch.failed``, listed by :func:`jobs`), with input ``DataFrame`` and a fingerprint of
    the frame's contents in place of the files'."""
    import pyarrow as pa

    from dockyard.registry import Registry

    with Registry.open(settings) as registry:
        scorer = Scorer.open(registry, ref, accelerate=accelerate, keep=keep)
        missing = scorer.missing([str(c) for c in frame.columns])
        if missing:
            raise _missing_error(missing, "the DataFrame")
        batch = pa.RecordBatch.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        summary = JobSummary(
            job_id=f"job-{uuid.uuid4().hex[:12]}",
            status="running",
            version=scorer.version.ref,
            runtime=scorer.runtime,
            input="DataFrame",
            fingerprint=_batch_fingerprint(batch),
            output=None,
            rejects=None,
        )
        started = time.perf_counter()
        try:
            result = scorer.score(batch, 0)
        except BaseException as exc:
            _finish(registry, summary, started, exc)
            raise
        summary.rows_in = result.rows
        summary.rows_scored = result.output.num_rows
        summary.rows_rejected = result.rejected
        _finish(registry, summary, started)
    output: pd.DataFrame = result.output.to_pandas()
    if result.rejects is not None:
        bad = set(result.rejects.column("row").to_pylist())
        output.index = [label for i, label in enumerate(frame.index) if i not in bad]
        output.attrs["rejects"] = result.rejects.to_pandas()
    else:
        output.index = frame.index
    return output


def jobs(registry: Registry, *, limit: int = 50, model: str | None = None) -> list[dict[str, Any]]:
    """Recorded jobs, newest first: each event's summary with its time and actor."""
    events = [
        event
        for action in ACTIONS
        for event in registry.events(action=action, model=model, limit=limit)
    ]
    events.sort(key=lambda event: event.id, reverse=True)
    return [
        {"at": event.at.isoformat(), "actor": event.actor, **dict(event.details)}
        for event in events[:limit]
    ]


# --- steps -------------------------------------------------------------------------------


def _check_options(
    ref: str | None,
    endpoint: str | None,
    batch_rows: int,
    workers: int | None,
    max_reject_rate: float | None,
    engine: str,
) -> None:
    if (ref is None) == (endpoint is None):
        raise InvalidRequestError(
            "Name a model reference or an endpoint, not both and not neither.",
            hint="dockyard score fraud@production in.parquet --out out.parquet, or "
            "dockyard score --endpoint fraud in.parquet --out out.parquet",
        )
    if batch_rows < 1:
        raise InvalidRequestError(f"--batch-rows must be at least 1 (got {batch_rows}).")
    if workers is not None and workers < 1:
        raise InvalidRequestError(f"--workers must be at least 1 (got {workers}).")
    if max_reject_rate is not None and not 0 <= max_reject_rate <= 1:
        raise InvalidRequestError(
            f"--max-reject-rate is a share between 0 and 1 (got {max_reject_rate})."
        )
    if engine not in ("local", "ray"):
        raise InvalidRequestError(f"Unknown engine {engine!r}.", hint="Use 'local' or 'ray'.")


def _resolve(registry: Registry, ref: str | None, endpoint: str | None) -> tuple[str, int]:
    """The exact ``name@version`` to score with, and the endpoint's revision (0 without)."""
    if endpoint is None:
        assert ref is not None
        return registry.get_version(ref).ref, 0
    from dockyard.deploy.service import Deployments

    deployment = Deployments(registry).get(endpoint)
    primary = max(deployment.spec.routes, key=lambda route: route.weight)
    return registry.get_version(primary.model).ref, deployment.revision


def _check_columns(scorer: Scorer, found: Input, location: str) -> None:
    names = found.schema().names
    missing = scorer.missing(names)
    if missing:
        raise _missing_error(missing, location)
    clash = [name for name in scorer.keep if name in (PREDICTION, VERSION)]
    clash += [name for name in scorer.keep if name.startswith(PROBA_PREFIX)]
    if clash:
        raise InvalidRequestError(
            f"Kept column names clash with the output's: {', '.join(clash)}.",
            hint=f"The output adds {PREDICTION!r}, {PROBA_PREFIX}<class> and {VERSION!r}.",
        )


def _useful_workers(found: Input, workers: int, batch_rows: int) -> int:
    """No more workers than the input has batches for (see :data:`BATCHES_PER_WORKER`): a
    small input is scored in the calling process, without starting any."""
    rows = found.rows()
    if rows is not None:
        batches = -(-rows // batch_rows)
        return max(1, min(workers, 1 + (batches - 1) // BATCHES_PER_WORKER))
    return workers if found.size() >= SMALL_INPUT_BYTES else 1


def _missing_error(missing: Sequence[str], where: str) -> SchemaValidationError:
    shown = ", ".join(repr(name) for name in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return SchemaValidationError(
        f"{where} lacks required columns: {shown}{more}.",
        hint="The input needs the model's columns, and any --keep or --id-column ones.",
        details={"missing": list(missing)},
    )


def _results(
    engine: str,
    found: Input,
    scorer: Scorer,
    settings: Settings,
    exact: str,
    accelerate: bool,
    workers: int,
    batch_rows: int,
    ray_address: str | None,
    keep: Sequence[str],
    id_column: str | None,
    log: bool,
    tally: Tally,
) -> Iterator[Scored]:
    from dockyard.batch.engine import WorkerSpec, numbered, scored
    from dockyard.batch.inputs import kinds, rebatch

    spec = WorkerSpec(settings, exact, accelerate, tuple(keep), id_column, log, workers)
    typed = kinds(scorer.signature) if scorer.signature is not None else {}
    if engine == "ray":
        from dockyard.batch.ray_engine import scored_on_ray

        return scored_on_ray(found, spec, batch_rows=batch_rows, typed=typed, address=ray_address)
    batches = numbered(rebatch(found.batches(batch_rows, typed=typed), batch_rows))
    return scored(batches, scorer=scorer, spec=spec, workers=workers, tally=tally)


def _check_rate(
    summary: JobSummary, limit: float | None, total: int | None, *, final: bool
) -> None:
    """Fail once the rejected share is certain to exceed ``limit`` (known early when the
    input's size is known), or at the end."""
    if limit is None or not summary.rows_rejected:
        return
    rows = summary.rows_in if final else total
    if rows is None or summary.rows_rejected <= limit * rows:
        return
    share = summary.rows_rejected / max(summary.rows_in, 1)
    raise RejectRateError(
        f"{summary.rows_rejected:,} of {summary.rows_in:,} rows read ({share:.2%}) failed "
        f"the signature, over the --max-reject-rate of {limit:.2%}; nothing was published.",
        hint="Run without --max-reject-rate to see the rejects file.",
    )


def _open_log(settings: Settings, batch_rows: int) -> PredictionLog:
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.store import MonitoringStore

    store = MonitoringStore(settings.resolved_monitoring_url, settings.monitoring_options)
    return PredictionLog(store, buffer_rows=batch_rows + 2 * LOG_FLUSH_ROWS)


def _log_source(scorer: Scorer, endpoint: str, revision: int) -> Source:
    """How the job's rows are labelled in the prediction log (as the server labels an
    endpoint's answers, with role ``batch``)."""
    from dockyard.monitoring.records import Source

    classes = scorer.classes
    binary = classes is not None and len(classes) == 2 and scorer.has_proba
    return Source(
        endpoint=endpoint,
        revision=revision,
        model=scorer.version.model,
        version=scorer.version.version,
        columns=scorer.features,
        classes=classes,
        positive=1 if binary else None,
        role="batch",
    )


def _record(log: PredictionLog, source: Source, summary: JobSummary, result: Scored) -> None:
    """One batch's scored rows into the prediction log: one record per row keyed by its id
    (the feedback join key) with an id column, else one per batch keyed by the job."""
    from dockyard.monitoring.records import ModelCall

    rows = result.output.num_rows
    if not rows:
        return
    call = ModelCall(result.inputs, result.predictions, result.probabilities)
    if result.ids is not None:
        for index, value in enumerate(result.ids):
            log.record(source, str(value), 200, 0.0, call, index, 1)
    else:
        log.record(source, f"{summary.job_id}-{summary.rows_in - result.rows}", 200, 0.0, call)
    if log.buffered >= LOG_FLUSH_ROWS:
        log.flush()


def _finish(
    registry: Registry, summary: JobSummary, started: float, error: BaseException | None = None
) -> None:
    """Close ``summary`` as completed, or failed with ``error``, and audit it."""
    summary.status = "completed" if error is None else "failed"
    summary.seconds = time.perf_counter() - started
    if error is not None:
        summary.error = _describe(error)
    _record_event(registry, summary)


def _record_event(registry: Registry, summary: JobSummary) -> None:
    model, _, version = summary.version.partition("@")
    registry.event_log.record(
        registry.actor, f"batch.{summary.status}", model, version, details=summary.to_dict()
    )


def _batch_fingerprint(batch: pa.RecordBatch) -> str:
    """A digest of a record batch's contents and types (its Arrow IPC stream)."""
    import hashlib

    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return "sha256:" + hashlib.sha256(sink.getvalue()).hexdigest()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
