"""Why a model answered as it did: additive attributions in the user's own input columns.

For each row, one attribution per input column of the signature, the base value, and the
model output they add up to (:class:`Explanation`). :func:`build_explainer` picks the exact
method a model allows and names it in the answer:

* XGBoost and LightGBM: their own TreeSHAP (``pred_contribs`` / ``pred_contrib``);
* scikit-learn trees and forests: ``shap``'s tree explainer (the ``explain`` extra);
* scikit-learn linear models: coefficient × (x − mean of the reference rows), exactly;
* anything else (ONNX, torch, pickled code...): ``shap``'s permutation explainer over
  background rows from the version's reference profile;
* ``method="lime"`` on request: the ``lime`` package's local surrogate (not additive).

A scikit-learn Pipeline whose first step is a ColumnTransformer is explained on the
transformed features and summed back to the columns the user sent (one-hot and scaled
columns go to their source column). Every exact answer is checked against the model's own
output before it is returned; a model whose structure cannot be matched is explained by
permutation instead. Nothing numeric is imported until an explainer is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.explain.explainer import Explainer, build_explainer
    from dockyard.explain.result import Explanation

__all__ = ["Explainer", "Explanation", "build_explainer"]

_LAZY = {
    "Explainer": "dockyard.explain.explainer",
    "build_explainer": "dockyard.explain.explainer",
    "Explanation": "dockyard.explain.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
