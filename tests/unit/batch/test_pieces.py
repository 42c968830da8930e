"""The batch package's pure pieces: re-batching in order, text columns from CSV, names."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dockyard.batch.inputs import rebatch, typed_csv
from dockyard.batch.output import output_format, rejects_location


def _batch(start: int, rows: int, *, text: bool = False) -> pa.RecordBatch:
    values = list(range(start, start + rows))
    column = pa.array([str(v) for v in values]) if text else pa.array(values, pa.float64())
    return pa.RecordBatch.from_arrays([pa.array(values), column], names=["id", "x"])


def test_rebatch_cuts_to_the_size_and_keeps_every_row_in_order() -> None:
    parts = [_batch(0, 3), _batch(3, 0), _batch(3, 10), _batch(13, 2)]
    out = list(rebatch(iter(parts), 4))
    assert [b.num_rows for b in out] == [4, 4, 4, 3]
    assert [v for b in out for v in b.column("id").to_pylist()] == list(range(15))


def test_rebatch_brings_blocks_of_different_types_to_text() -> None:
    out = list(rebatch(iter([_batch(0, 2), _batch(2, 2, text=True)]), 3))
    assert out[0].schema.field("x").type == pa.string()
    assert [v for b in out for v in b.column("x").to_pylist()] == ["0", "1", "2", "3"]


def test_csv_text_converts_to_the_signatures_kinds_and_stays_text_when_it_cannot() -> None:
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["1.5", None]), pa.array(["1", "x"]), pa.array(["true", "false"])],
        names=["a", "b", "c"],
    )
    typed = typed_csv(batch, {"a": "float", "b": "integer", "c": "boolean"})
    assert typed.column("a").to_pylist() == [1.5, None]
    assert typed.column("b").type == pa.string()  # "x": the scorer rejects that row
    assert typed.column("c").to_pylist() == [True, False]


@pytest.mark.parametrize(
    ("output", "rejects", "kind"),
    [
        ("out.parquet", "out.rejects.parquet", "parquet"),
        ("s3://b/scored/day.csv", "s3://b/scored/day.rejects.csv", "csv"),
        ("/tmp/scored", "/tmp/scored.rejects.parquet", "parquet"),
    ],
)
def test_rejects_sit_beside_the_output_in_its_format(output: str, rejects: str, kind: str) -> None:
    assert rejects_location(output) == rejects
    assert output_format(output) == kind
