"""Finding a job's input files and streaming them as Arrow record batches.

An input is a file, a folder (every Parquet, CSV or JSON-lines file under it) or a glob,
on the local disk or any fsspec URL (``s3://...``). Files are read in record batches and
never held whole: Parquet file by file through :class:`pyarrow.parquet.ParquetFile`, CSV
and JSON lines through pyarrow's streaming readers, each on demand (no read-ahead).
:func:`rebatch` cuts the stream into batches of the job's size, in order, so that a
batch's first row number is known when it is cut.

CSV carries no types. The signature's columns are read as text and converted here
(:func:`typed_csv`): a clean column costs one Arrow cast; a column with a value that is no
number keeps that value as text beside the numbers, so the validator rejects that row (with
what it got) rather than the reader failing the whole job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.errors import UnreadableFileError

if TYPE_CHECKING:
    import pyarrow as pa
    from fsspec import AbstractFileSystem

__all__ = ["CONVERTED", "FORMATS", "Input", "discover", "kinds", "rebatch", "typed_csv"]

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}
"""File suffixes read as input, and their format."""

_GLOB = frozenset("*?[")
CONVERTED = frozenset({"float", "integer", "boolean"})
_CSV_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Input:
    """The files of one job's input, all of one format, in a stable (sorted) order."""

    location: str
    fs: AbstractFileSystem
    files: tuple[str, ...]
    format: str

    def schema(self) -> pa.Schema:
        """The columns and types of the input (its first file's)."""
        import pyarrow as pa

        try:
            if self.format == "parquet":
                with self._parquet(self.files[0]) as file:
                    return file.schema_arrow
            return next(self._file_batches(self.files[0], typed={})).schema
        except StopIteration:
            return pa.schema([])
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise _unreadable(self.location, exc) from exc

    def rows(self) -> int | None:
        """The input's row count when it is known without reading it (Parquet metadata)."""
        if self.format != "parquet":
            return None
        try:
            total = 0
            for path in self.files:
                with self._parquet(path) as file:
                    total += int(file.metadata.num_rows)
            return total
        except Exception:
            return None

    def size(self) -> int:
        """The input's bytes, all files together."""
        return sum(int(self.fs.size(path) or 0) for path in self.files)

    def fingerprint(self) -> str:
        """A digest of what the input was: each file's path, size and modification mark
        (ETag or time), so two jobs over the same data can be told apart from ones that
        were not, without reading the data."""
        digest = hashlib.sha256()
        for path in self.files:
            info = self.fs.info(path)
            mark = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
            digest.update(f"{path}\0{info.get('size')}\0{mark}\n".encode())
        return "sha256:" + digest.hexdigest()

    def batches(self, rows: int, *, typed: Mapping[str, str]) -> Iterator[pa.RecordBatch]:
        """Every row of every file, in order, as record batches of at most ``rows`` rows.
        ``typed`` names the signature's columns and their kinds (for CSV's conversion)."""
        import pyarrow as pa

        try:
            for path in self.files:
                if self.format == "parquet":
                    with self._parquet(path) as file:
                        yield from file.iter_batches(batch_size=rows)
                    continue
                yield from self._file_batches(path, typed=typed)
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(self.location, exc) from exc

    @contextmanager
    def _parquet(self, path: str) -> Iterator[Any]:
        import pyarrow.parquet as pq

        # Read on demand, without pre-buffering: a dataset scanner reads ahead of a slow
        # consumer, and pre-buffering keeps every column chunk read until the file is done,
        # either of which makes memory grow with the file rather than with the batch.
        with self.fs.open(path, "rb") as stream, pq.ParquetFile(stream, pre_buffer=False) as file:
            yield file

    def _file_batches(self, path: str, *, typed: Mapping[str, str]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        with self.fs.open(path, "rb") as stream:
            if self.format == "json":
                import pyarrow.json as pj

                reader: Any = pj.open_json(
                    stream, read_options=pj.ReadOptions(block_size=_CSV_BLOCK_BYTES)
                )
                yield from reader
                return
            import pyarrow.csv as pc

            reader = pc.open_csv(
                stream,
                read_options=pc.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=pc.ConvertOptions(
                    column_types={
                        name: pa.string()
                        for name, kind in typed.items()
                        if kind in CONVERTED or kind == "string"
                    },
                    strings_can_be_null=True,
                ),
            )
            for batch in reader:
                yield typed_csv(batch, typed)


def discover(location: str, storage_options: Mapping[str, Any] | None = None) -> Input:
    """The input at ``location`` (a file, a folder, or a glob; a path or an fsspec URL).

    Raises :class:`~dockyard.errors.UnreadableFileError` for nothing there, no readable
    file, or files of mixed formats."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(location, **dict(storage_options or {}))
        if any(char in path for char in _GLOB):
            found = sorted(p for p in fs.glob(path) if not fs.isdir(p))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if _format(p) is not None)
        elif fs.exists(path):
            found = [path]
        else:
            found = []
    except (ImportError, ValueError) as exc:
        raise UnreadableFileError(
            f"Cannot open {location}: {exc}",
            hint="Give a local path, a folder, a glob or an fsspec URL (s3:// needs s3fs).",
        ) from exc
    except OSError as exc:
        raise _unreadable(location, exc) from exc
    if not found:
        raise UnreadableFileError(
            f"No input at {location}.",
            hint="Give a Parquet, CSV or JSON-lines file, a folder of them, or a glob.",
        )
    formats = {_format(path) for path in found}
    if None in formats or len(formats) > 1:
        shown = ", ".join(sorted(str(f or "unknown") for f in formats))
        raise UnreadableFileError(
            f"The input at {location} is not of one known format (found: {shown}).",
            hint=f"Input files end in one of {', '.join(sorted(FORMATS))}.",
        )
    return Input(location, fs, tuple(found), str(formats.pop()))


def rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows, in order, cut into batches of exactly ``rows`` rows (the last one
    shorter). Readers give batches of their own sizes (row groups, byte blocks)."""
    import pyarrow as pa

    waiting: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if waiting and batch.schema != waiting[0].schema:
            waiting, batch = _unified(waiting, batch)
        waiting.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(waiting)
            head = table.slice(0, rows).combine_chunks()
            yield head.to_batches()[0] if head.num_rows else pa.RecordBatch.from_pylist([])
            rest = table.slice(rows)
            waiting = rest.to_batches() if rest.num_rows else []
            held -= rows
    if held:
        table = pa.Table.from_batches(waiting).combine_chunks()
        yield table.to_batches()[0]


def _unified(
    waiting: list[pa.RecordBatch], batch: pa.RecordBatch
) -> tuple[list[pa.RecordBatch], pa.RecordBatch]:
    """Batches whose columns came out of different types (a CSV column that converted in one
    block and stayed text in another) brought to one schema: text wherever either is."""
    import pyarrow as pa

    first = waiting[0].schema
    if first.names != batch.schema.names:
        raise UnreadableFileError(
            f"The input's files have different columns: {first.names} and {batch.schema.names}."
        )
    fields = [
        a if a.type == b.type else pa.field(a.name, pa.string())
        for a, b in zip(first, batch.schema, strict=True)
    ]
    schema = pa.schema(fields)

    def cast(part: pa.RecordBatch) -> pa.RecordBatch:
        if part.schema == schema:
            return part
        try:
            return pa.Table.from_batches([part]).cast(schema).combine_chunks().to_batches()[0]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise UnreadableFileError(f"The input's column types disagree: {exc}") from exc

    return [cast(part) for part in waiting], cast(batch)


def typed_csv(batch: pa.RecordBatch, typed: Mapping[str, str]) -> pa.RecordBatch:
    """A CSV batch with the signature's numeric and boolean columns converted from text."""
    if not typed:
        return batch
    columns = list(batch.columns)
    names = batch.schema.names
    changed = False
    for index, name in enumerate(names):
        kind = typed.get(name)
        if kind in CONVERTED:
            columns[index] = _convert(columns[index], kind)
            changed = True
    if not changed:
        return batch
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(columns, names=names)


def _convert(column: pa.Array, kind: str) -> pa.Array:
    """One text column as its kind; left as text when some value does not convert (the
    scorer then converts what does, so only the rows with the bad values are rejected)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = {"float": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}[kind]
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column


def kinds(signature: Any) -> dict[str, str]:
    """Signature column name → its kind (``float``, ``integer``, ``boolean``, ``string``...),
    which CSV text is converted to."""
    return {column.name: str(column.dtype) for column in signature.columns}


def _format(path: str) -> str | None:
    lowered = path.lower()
    for suffix, name in FORMATS.items():
        if lowered.endswith(suffix):
            return name
    return None


def _unreadable(location: str, exc: BaseException) -> UnreadableFileError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UnreadableFileError(f"Cannot read {location}: {text}")
