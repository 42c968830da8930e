"""Data fingerprints: a short, stable identity for a training sample, recorded as lineage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataFingerprint", "fingerprint"]

_ALGORITHM = "sha256:pandas-row-hash-v1"


@dataclass(frozen=True)
class DataFingerprint:
    """Rows, column names and a SHA-256 over names, dtypes and every value, row by row.

    Equal data (same columns, dtypes, values and row order) gives the same ``sha256``; the
    index is ignored. Row hashes come from ``pandas.util.hash_pandas_object``, stable across
    pandas releases in practice but not promised by pandas: ``algorithm`` names the scheme.
    """

    rows: int
    columns: tuple[str, ...]
    sha256: str
    algorithm: str = _ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "rows": self.rows,
            "columns": list(self.columns),
            "sha256": self.sha256,
            "algorithm": self.algorithm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataFingerprint:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rows=int(data["rows"]),
            columns=tuple(str(column) for column in data["columns"]),
            sha256=str(data["sha256"]),
            algorithm=str(data.get("algorithm", _ALGORITHM)),
        )


def fingerprint(sample: pd.DataFrame) -> DataFingerprint:
    """The :class:`DataFingerprint` of ``sample``.

    Raises :class:`InvalidRequestError` when a column holds unhashable values (lists, dicts).
    """
    columns = tuple(str(column) for column in sample.columns)
    header = json.dumps({"columns": columns, "dtypes": [str(d) for d in sample.dtypes]})
    digest = hashlib.sha256(header.encode())
    if len(sample) and len(columns):
        import pandas as pd  # the sample is a DataFrame already: pandas is loaded

        try:
            rows = pd.util.hash_pandas_object(sample, index=False)
        except TypeError as exc:
            raise InvalidRequestError(
                f"cannot fingerprint the sample: {exc}",
                hint="Columns must hold scalar values (numbers, strings, booleans, dates).",
            ) from exc
        digest.update(rows.to_numpy().tobytes())
    return DataFingerprint(len(sample), columns, digest.hexdigest())
