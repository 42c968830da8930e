"""The answer to "why": per row, base value + one attribution per input column = output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Space = Literal["probability", "log_odds", "margin", "value"]
"""What the attributions add up to: a class probability, a binary classifier's log-odds, a
multi-class model's raw (softmax) score or another link's raw margin, or the regression
value itself."""


@dataclass(frozen=True)
class Explanation:
    """Attributions for ``rows`` rows, ``targets`` outputs and ``columns`` input columns.

    ``values[r, t, c]`` is column ``c``'s share of row ``r``'s output ``t``;
    ``base[r, t] + values[r, t, :].sum() == output[r, t]`` for every additive method
    (``additive`` is false only for LIME, whose weights are a local surrogate's slopes and
    whose ``base`` is the surrogate's intercept).
    """

    method: str
    space: Space
    columns: tuple[str, ...]
    targets: tuple[str, ...]
    values: Any  # float64 array (rows, targets, columns)
    base: Any  # float64 array (rows, targets)
    output: Any  # float64 array (rows, targets)
    additive: bool = True

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    def additivity_gap(self) -> float:
        """The largest ``|base + Σ values − output|`` over rows and targets."""
        import numpy as np

        if self.rows == 0:
            return 0.0
        return float(np.abs(self.base + self.values.sum(axis=2) - self.output).max())

    def importance(self) -> dict[str, float]:
        """Mean |attribution| per column over the rows, averaged over the targets."""
        import numpy as np

        means = np.abs(self.values).mean(axis=(0, 1)) if self.rows else np.zeros(len(self.columns))
        return {name: float(value) for name, value in zip(self.columns, means, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON: the method and space, then per row ``{"base", "output", "attributions"}``,
        each keyed by target (and attributions by column)."""
        rows = []
        for r in range(self.rows):
            rows.append(
                {
                    "base": _by(self.targets, self.base[r]),
                    "output": _by(self.targets, self.output[r]),
                    "attributions": {
                        target: _by(self.columns, self.values[r, t])
                        for t, target in enumerate(self.targets)
                    },
                }
            )
        return {
            "method": self.method,
            "space": self.space,
            "additive": self.additive,
            "columns": list(self.columns),
            "targets": list(self.targets),
            "explanations": rows,
        }

    def to_frame(self) -> Any:
        """One row per (input row, target): ``row``, ``target``, ``base``, ``output`` and a
        column per input column holding its attribution (what ``dockyard explain`` writes)."""
        import pandas as pd

        records = []
        for r in range(self.rows):
            for t, target in enumerate(self.targets):
                record: dict[str, Any] = {
                    "row": r,
                    "target": target,
                    "base": float(self.base[r, t]),
                    "output": float(self.output[r, t]),
                }
                record.update(_by(self.columns, self.values[r, t]))
                records.append(record)
        return pd.DataFrame.from_records(
            records, columns=["row", "target", "base", "output", *self.columns]
        )


def _by(names: Sequence[str], values: Any) -> dict[str, float]:
    return {name: float(value) for name, value in zip(names, values, strict=True)}
