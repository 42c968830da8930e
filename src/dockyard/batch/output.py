"""Writing a job's output and rejects: under a temporary name, published by renaming.

A :class:`Sink` writes Parquet (or CSV when the name ends in ``.csv``) table by table to a
hidden temporary file beside the destination; :meth:`Sink.publish` closes it and renames it
to the final name, :meth:`Sink.discard` removes it. A job that fails or is interrupted
therefore never leaves a file at the final path that looks finished. On a local disk the
rename is atomic; on object stores it is a copy, done only once the file is complete.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dockyard.errors import UnreadableFileError

if TYPE_CHECKING:
    import pyarrow as pa
    from fsspec import AbstractFileSystem

__all__ = ["Sink", "output_format", "rejects_location"]


def output_format(location: str) -> str:
    """``csv`` for a name ending in ``.csv``, ``parquet`` for anything else."""
    return "csv" if location.lower().endswith(".csv") else "parquet"


def rejects_location(output: str) -> str:
    """The default rejects file: beside the output, ``NAME.rejects.EXT``."""
    head, sep, tail = output.rpartition("/")
    stem, dot, suffix = tail.rpartition(".")
    name = f"{stem}.rejects.{suffix}" if dot and stem else f"{tail}.rejects.parquet"
    return f"{head}{sep}{name}"


class Sink:
    """One output file, written under a temporary name until :meth:`publish`."""

    def __init__(self, location: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        self.location = location
        self.format = output_format(location)
        try:
            self.fs: AbstractFileSystem
            self.fs, self.path = fsspec.core.url_to_fs(location, **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise UnreadableFileError(f"Cannot write to {location}: {exc}") from exc
        folder, name = posixpath.split(self.path)
        self.temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.partial")
        self.rows = 0
        self._stream: Any = None
        self._writer: Any = None
        self._schema: pa.Schema | None = None
        self._held: pa.Table | None = None

    def check(self) -> None:
        """Fail now, before any work, if the destination's folder cannot be written."""
        folder = posixpath.dirname(self.path)
        try:
            if folder and not self.fs.exists(folder):
                self.fs.makedirs(folder, exist_ok=True)
            if self.fs.isdir(self.path):
                raise UnreadableFileError(f"{self.location} is a folder; give a file name.")
        except OSError as exc:
            raise UnreadableFileError(f"Cannot write to {self.location}: {exc}") from exc

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows (the first table with types fixes the file's schema)."""
        if self._writer is None:
            if table.num_rows == 0 and _untyped(table):
                if self._held is None:
                    self._held = table
                return
            self._open(table.schema)
        assert self._schema is not None
        if table.schema != self._schema:
            table = _conform(table, self._schema)
        self._writer.write_table(table) if self.format == "parquet" else self._writer.write(table)
        self.rows += table.num_rows

    def publish(self) -> str:
        """Close the file and rename it to its final name; returns that name."""
        if self._writer is None:
            import pyarrow as pa

            self._open(self._held.schema if self._held is not None else pa.schema([]))
        self._close()
        self.fs.mv(self.temporary, self.path)
        return self.location

    def discard(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        try:
            self._close()
        finally:
            try:
                if self.fs.exists(self.temporary):
                    self.fs.rm(self.temporary)
            except OSError:
                pass

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._stream = self.fs.open(self.temporary, "wb")
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self._stream, schema)
        else:
            import pyarrow.csv as pcsv

            self._writer = pcsv.CSVWriter(self._stream, schema)

    def _close(self) -> None:
        writer, stream = self._writer, self._stream
        self._writer = self._stream = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if stream is not None:
                stream.close()


def _untyped(table: pa.Table) -> bool:
    import pyarrow as pa

    return any(pa.types.is_null(field.type) for field in table.schema)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s column types (a batch whose column came out another type,
    or with no rows)."""
    import pyarrow as pa

    if table.schema.names != schema.names:
        raise UnreadableFileError(
            f"A batch had columns {table.schema.names}, the output {schema.names}."
        )
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UnreadableFileError(
            f"A batch's column types differ from the output's: {exc}",
            hint="Make the input files' column types agree.",
        ) from exc
