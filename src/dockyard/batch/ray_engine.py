"""The Ray engine: the same job on Ray Data, for inputs beyond one machine.

Ray's readers read the input files (Parquet, CSV, JSON lines) in parallel; ``map_batches``
sends record batches of the job's size to a pool of actors, each of which loads the version
once from the registry (digest-verified, as a local worker does) and scores with the same
:class:`~dockyard.batch.scorer.Scorer`, validation and rejects included. Each batch comes
back whole (its output and rejects as one serialised :class:`~dockyard.batch.scorer.Scored`)
and in input order, so the driver writes the output, the rejects file and the prediction
log exactly as the local engine does: same rows, same order, same row numbers, same
publish-by-rename. The actors need the registry (its database and artifact store) reachable
from every node: PostgreSQL and S3 on a cluster.

``ray`` is imported only here, when ``--engine ray`` is asked for (``dockyard[ray]``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    import pyarrow as pa

    from dockyard.batch.engine import WorkerSpec
    from dockyard.batch.inputs import Input
    from dockyard.batch.scorer import Scored, Scorer

__all__ = ["scored_on_ray"]

_COLUMN = "scored"


class ScoringActor:
    """One Ray actor: the version loaded once, then a scored batch per call."""

    def __init__(self, spec: WorkerSpec, typed: Mapping[str, str], csv: bool) -> None:
        self.scorer: Scorer = spec.scorer()
        self.typed = dict(typed)
        self.csv = csv

    def __call__(self, table: pa.Table) -> dict[str, list[bytes]]:
        import pyarrow as pa

        from dockyard.batch.inputs import typed_csv

        combined = table.combine_chunks()
        batches = combined.to_batches()
        batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
        if self.csv:
            batch = typed_csv(batch, self.typed)
        result = self.scorer.score(batch, 0)
        return {_COLUMN: [pickle.dumps(result, protocol=5)]}


def scored_on_ray(
    found: Input,
    spec: WorkerSpec,
    *,
    batch_rows: int,
    typed: Mapping[str, str],
    address: str | None = None,
) -> Iterator[Scored]:
    """Each batch of ``found`` scored on Ray, in input order, with row numbers as the local
    engine gives them."""
    import logging

    ray = _ray()
    if not ray.is_initialized():
        # A local Ray gets a core per actor and one for the readers: with the actors holding
        # every core, the read tasks would never be scheduled.
        ray.init(
            address=address,
            num_cpus=None if address else spec.workers + 1,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = _read(ray, found, typed)
    scored = dataset.map_batches(
        ScoringActor,
        fn_constructor_args=(spec, typed, found.format == "csv"),
        compute=ray.data.ActorPoolStrategy(size=spec.workers),
        batch_size=batch_rows,
        batch_format="pyarrow",
    )
    first_row = 0
    for block in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        for payload in block.column(_COLUMN).to_pylist():
            result: Scored = pickle.loads(payload)
            if first_row and result.rejects is not None:
                result = _shifted(result, first_row)
            first_row += result.rows
            yield result


def _read(ray: Any, found: Input, typed: Mapping[str, str]) -> Any:
    import pyarrow.fs as pafs

    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(found.fs))
    paths = list(found.files)
    if found.format == "parquet":
        return ray.data.read_parquet(paths, filesystem=filesystem)
    if found.format == "json":
        return ray.data.read_json(paths, filesystem=filesystem)
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from dockyard.batch.inputs import CONVERTED

    types = {
        name: pa.string() for name, kind in typed.items() if kind in CONVERTED or kind == "string"
    }
    return ray.data.read_csv(
        paths,
        filesystem=filesystem,
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def _shifted(result: Scored, first_row: int) -> Scored:
    """``result`` with its rejects' row numbers counted from the input's start."""
    import dataclasses

    import pyarrow.compute as pc

    from dockyard.batch.scorer import REJECT_ROW

    rejects = result.rejects
    assert rejects is not None
    index = rejects.schema.get_field_index(REJECT_ROW)
    rows = pc.add(rejects.column(REJECT_ROW), first_row)
    return dataclasses.replace(result, rejects=rejects.set_column(index, REJECT_ROW, rows))


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise InvalidRequestError(
            "The Ray engine needs Ray Data, which is not installed.",
            hint="pip install 'dockyard[ray]', or score with the local engine.",
        ) from exc
    return ray
