"""Choose the method a model allows, run it, and answer in the user's columns."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError, UnsupportedModelError
from dockyard.explain import agnostic, methods
from dockyard.explain.features import unwrap
from dockyard.explain.methods import NotApplicable, Raw
from dockyard.explain.result import Explanation, Space

if TYPE_CHECKING:
    from dockyard.runtimes import LoadedModel

METHODS = ("auto", "lime")
_TOLERANCE = 1e-6
_BACKGROUND_ROWS = 100
#: Rows explained at registration for global importance (at most).
IMPORTANCE_ROWS = 100
_MIN_IMPORTANCE_ROWS = 20
#: Rows × tree nodes shap's tree explainer may walk at registration (a fraction of a second).
TREE_BUDGET = 3_000_000


class Explainer:
    """Explains one loaded model; built once per version and reused (it keeps the method it
    settled on, and the background rows).

    ``background`` is model input (a DataFrame or 2-D array, like ``x``) from the version's
    reference profile; the linear, permutation and LIME methods need it.
    """

    def __init__(self, model: LoadedModel, columns: Sequence[str], background: Any = None) -> None:
        from dockyard.schema.labels import label_text

        self.model = model
        self.columns = tuple(columns)
        self.background = None if background is None else background[:_BACKGROUND_ROWS]
        classes = model.classes
        self.classes = None if classes is None else [str(label_text(c)) for c in classes]
        self.exact_failure: str | None = None  # why the exact method was given up, if it was

    def explain(self, x: Any, method: str = "auto") -> Explanation:
        """Attributions for each row of ``x`` (validated model input)."""
        import numpy as np

        if method not in METHODS:
            raise InvalidRequestError(
                f"Unknown explanation method {method!r}.", hint=f"Use one of: {', '.join(METHODS)}."
            )
        if method == "lime":
            return self._answer(self._agnostic(x, lime=True), additive=False)
        answer = self.explain_exact(x)
        if answer is None:
            answer = self._answer(self._agnostic(x, lime=False), additive=True)
        if answer.rows and not np.isfinite(answer.values).all():
            raise UnsupportedModelError("The explanation has non-finite values for this input.")
        return answer

    def explain_exact(self, x: Any) -> Explanation | None:
        """The exact method's explanation, or ``None`` when the model has none (the reason
        is kept in :attr:`exact_failure`, and later calls go straight to ``None``)."""
        if self.exact_failure is not None:
            return None
        try:
            raw = self._exact(x)
        except Exception as exc:  # any exact path may refuse: fall back, remembered
            self.exact_failure = str(exc) or type(exc).__name__
            return None
        if not _adds_up(raw):
            self.exact_failure = f"{raw.method} did not add up to the model's output"
            return None
        return self._answer(raw, additive=True)

    # --- the exact methods --------------------------------------------------------------

    def _exact(self, x: Any) -> Raw:
        runtime = self.model.runtime
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if runtime == "xgboost":
                return methods.xgboost(self.model, x, self.classes)
            if runtime == "lightgbm":
                return methods.lightgbm(self.model, x, self.classes)
            estimator = getattr(self.model, "estimator", None)
            if estimator is None:
                raise NotApplicable(f"no exact method for {runtime} models")
            unwrapped = unwrap(estimator, len(self.columns))
            if unwrapped is None:
                raise NotApplicable("the pipeline's features cannot be traced to its columns")
            z = unwrapped.transform(x)
            module = type(unwrapped.final).__module__
            if module.startswith(("sklearn.ensemble", "sklearn.tree")):
                raw = methods.sklearn_tree(unwrapped.final, z, self.classes)
            elif self.background is not None:
                background = unwrapped.transform(self.background)
                raw = methods.sklearn_linear(unwrapped.final, z, background, self.classes)
            else:
                raise NotApplicable("a linear model needs reference rows")
        return _grouped(raw, unwrapped.groups, len(self.columns))

    # --- model-agnostic methods ---------------------------------------------------------

    def _agnostic(self, x: Any, *, lime: bool) -> Raw:
        import numpy as np

        if self.background is None or len(self.background) == 0:
            raise UnsupportedModelError(
                "Explaining this model needs reference rows, and the version has none.",
                hint="Register it with a sample (register --sample) to give it a profile.",
            )
        space: Space
        if self.model.has_proba:
            space, targets = "probability", tuple(self.classes or ())
        else:
            space, targets = "value", ("value",)
        frame_like = hasattr(x, "columns")
        template = x if frame_like else None

        def call(rows: Any) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = _rebuild(rows, template, self.columns)
                if space == "probability":
                    return np.asarray(self.model.predict_proba(data), dtype=np.float64)
                out = np.asarray(self.model.predict(data))
                if out.dtype.kind not in "biuf":
                    raise UnsupportedModelError(
                        "This model gives neither probabilities nor numbers to explain."
                    )
                return out.astype(np.float64).reshape(len(out), -1)

        rows, background = _array(x), _array(self.background)
        if lime:
            return agnostic.lime(call, rows, background, self.columns, space, targets)
        return agnostic.permutation(call, rows, background, space, targets)

    def _answer(self, raw: Raw, *, additive: bool) -> Explanation:
        return Explanation(
            method=raw.method,
            space=raw.space,
            columns=self.columns,
            targets=raw.targets,
            values=raw.values,
            base=raw.base,
            output=raw.output,
            additive=additive,
        )


def global_importance(
    model: LoadedModel, columns: Sequence[str], x: Any, *, rows: int | None = None
) -> dict[str, Any] | None:
    """Mean |attribution| per column over (up to ``rows`` of) a sample, by the model's
    exact method — ``None`` for a model without one (permutation at registration would cost
    more than registering), and for a scikit-learn tree model when ``shap`` is not
    installed. ``share`` holds the same figures normalised to sum 1.

    By default the rows are :func:`importance_rows`: registration pays for this once per
    version, so shap's tree explainer gets fewer rows on a large forest."""
    if rows is None:
        rows = importance_rows(model, columns)
        if rows == 0:
            return None
    sample = _spread(x, rows)
    # the reference rows later explanations use: the profile's examples, chosen alike
    explainer = Explainer(model, columns, _spread(x, _BACKGROUND_ROWS))
    explanation = explainer.explain_exact(sample)
    if explanation is None or explanation.rows == 0:
        return None
    importance = explanation.importance()
    total = sum(importance.values())
    return {
        "method": explanation.method,
        "space": explanation.space,
        "rows": explanation.rows,
        "importance": importance,
        "share": {k: v / total for k, v in importance.items()} if total > 0 else None,
    }


def importance_rows(model: LoadedModel, columns: Sequence[str]) -> int:
    """How many sample rows registration explains for global importance: 100, or for a
    scikit-learn tree model (explained by shap's tree explainer, whose cost grows with rows ×
    tree nodes) as many as keep rows × nodes under a budget, at least 20; 0 when such a
    model's method is not installed (``shap``), so registration does without."""
    import importlib.util

    estimator = getattr(model, "estimator", None)
    if estimator is None or model.runtime in ("xgboost", "lightgbm"):
        return IMPORTANCE_ROWS  # native or linear: cheap, or no exact method at all
    unwrapped = unwrap(estimator, len(columns))
    final = estimator if unwrapped is None else unwrapped.final
    if not type(final).__module__.startswith(("sklearn.ensemble", "sklearn.tree")):
        return IMPORTANCE_ROWS
    if importlib.util.find_spec("shap") is None:
        return 0
    nodes = _tree_nodes(final)
    if nodes == 0:
        return IMPORTANCE_ROWS
    return max(_MIN_IMPORTANCE_ROWS, min(IMPORTANCE_ROWS, TREE_BUDGET // nodes))


def _tree_nodes(final: Any) -> int:
    """Nodes over every tree of a scikit-learn tree or tree ensemble (0 when unknown)."""
    import numpy as np

    trees = getattr(final, "estimators_", None)
    found = [final] if trees is None else np.ravel(np.asarray(trees, dtype=object)).tolist()
    return sum(int(getattr(getattr(t, "tree_", None), "node_count", 0)) for t in found)


def build_explainer(model: LoadedModel, columns: Sequence[str], background: Any) -> Explainer:
    """An :class:`Explainer` for ``model`` whose input has ``columns``."""
    return Explainer(model, columns, background)


def _spread(x: Any, rows: int) -> Any:
    """Up to ``rows`` rows spread evenly over ``x``."""
    step = max(1, len(x) // rows)
    return x.iloc[::step][:rows] if hasattr(x, "iloc") else x[::step][:rows]


def _grouped(raw: Raw, groups: Sequence[int], n_columns: int) -> Raw:
    """Sum the features' attributions into the input columns they come from."""
    import numpy as np

    if list(groups) == list(range(n_columns)):
        return raw
    values = np.zeros((raw.values.shape[0], raw.values.shape[1], n_columns))
    for feature, column in enumerate(groups):
        values[:, :, column] += raw.values[:, :, feature]
    return Raw(raw.method, raw.space, raw.targets, values, raw.base, raw.output)


def _adds_up(raw: Raw) -> bool:
    import numpy as np

    if raw.values.shape[0] == 0:
        return True
    scale = max(1.0, float(np.abs(raw.output).max()))
    gap = np.abs(raw.base + raw.values.sum(axis=2) - raw.output).max()
    return bool(gap <= _TOLERANCE * scale)


def _array(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "columns"):
        numeric = all(dtype.kind in "biuf" for dtype in x.dtypes)
        return x.to_numpy(dtype=np.float64 if numeric else object)
    return np.asarray(x)


def _rebuild(rows: Any, template: Any, columns: Sequence[str]) -> Any:
    """Rows (a 2-D array) back into the model's input type, the template's dtypes kept."""
    if template is None:
        return rows
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype(dict(template.dtypes))
