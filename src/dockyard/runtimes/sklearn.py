"""scikit-learn estimators and pipelines, stored with skops (``.skops``).

skops writes an object as a tree of typed nodes and, unlike pickle, refuses at load time
every type not on an allow-list, so a model file cannot run code it brings along. skops's
own default list is deliberately short; Dockyard trusts, without ``trusted=True``:

* whatever skops trusts by default (scikit-learn estimators, numpy and scipy ufuncs,
  numpy dtypes and random generators, builtin primitives and containers);
* ``builtins.object`` (what ``make_column_selector(dtype_include=object)`` keeps);
* **classes** defined in scikit-learn (``sklearn.*``, except the vendored
  ``sklearn.externals`` and the ``sklearn.utils._testing`` helpers): pipelines'
  internals, distance metrics, KD-trees, tree node storage;
* numpy scalar and dtype **classes** (``numpy.float64``, ``numpy.dtype``,
  ``numpy.dtypes.StrDType``) and scipy sparse matrix/array **classes**.

A name is trusted by these rules only when it resolves to a class defined in that library,
never when it names a function: skops files may hold plain functions (``FunctionTransformer
(func=...)``) and call some constructors with arguments taken from the file, so trusting
names such as ``numpy.*`` wholesale would let a crafted file call ``numpy.memmap`` (which
writes files) or any numpy function. Functions other than skops's default ufuncs need trust.

skops itself also distrusts ``sklearn.tree._tree.Tree`` and the HistGradientBoosting
``TreePredictor``: their node arrays are indexed without bounds checks, so a *crafted* file
can crash the process at predict time. An object Dockyard serialises itself cannot be
crafted, so :meth:`SklearnRuntime.dump` and :meth:`~SklearnRuntime.load` (of bytes verified
against the digest recorded at registration) accept them; :meth:`~SklearnRuntime.read` of a
file someone hands over requires ``trusted=True`` for them, as skops does.

Types trusted with ``trusted=True`` are stored in ``options["trusted_types"]`` and in
:attr:`Artifact.trusted_types <dockyard.runtimes.base.Artifact.trusted_types>`; loading
passes exactly those to skops, and only when it is itself called with ``trusted=True``.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from dockyard.errors import (
    DockyardError,
    ModelLoadError,
    UnreadableFileError,
    UnsupportedModelError,
    UntrustedModelError,
)
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import EstimatorModel, mro_names, qualified_name
from dockyard.runtimes._packages import refusing_imports, require, versions
from dockyard.runtimes.base import Artifact, LoadedModel

SUFFIX = ".skops"
_ALWAYS_SAFE = frozenset({"builtins.object"})
_SKLEARN_EXCLUDED = ("sklearn.externals.", "sklearn.utils._testing")
_NOT_FOR_SKOPS = ("torch", "cupy", "dask", "jax", "tensorflow", "xgboost", "lightgbm")
"""Frameworks importing ``skops.io`` would otherwise drag in (see :func:`skops_io`)."""


class SklearnRuntime:
    """scikit-learn estimators (``BaseEstimator`` instances) through skops."""

    name = "sklearn"

    def handles(self, obj: object) -> bool:
        # XGBoost's and LightGBM's scikit-learn wrappers are estimators too, but their
        # native formats are safer and faster; their own runtimes take them.
        module = type(obj).__module__
        if module.startswith(("xgboost.", "lightgbm.")):
            return False
        return "sklearn.base.BaseEstimator" in mro_names(obj)

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        sio = skops_io()
        try:
            data: bytes = sio.dumps(obj)
        except Exception as exc:
            raise UnsupportedModelError(
                f"skops cannot serialise this {qualified_name(obj)}: {exc}",
                hint="Store the estimator's parts in formats Dockyard supports, or export "
                "it to ONNX with skl2onnx.",
            ) from exc
        return self._artifact(data, trusted=trusted, from_file=False)

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == SUFFIX and zipfile.is_zipfile(path)

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableFileError(f"Cannot read {path}: {exc}") from exc
        artifact = self._artifact(data, trusted=trusted, from_file=True)
        try:
            model = self._load(artifact.data, artifact.options, trusted=True)
        except ModelLoadError as exc:
            raise UnreadableFileError(f"{path}: {exc.message}") from exc
        if not callable(getattr(model.estimator, "predict", None)):
            raise UnsupportedModelError(
                f"{path} holds a {qualified_name(model.estimator)}, not a model with predict."
            )
        return artifact

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        return self._load(data, options, trusted=trusted)

    def environment(self) -> dict[str, str]:
        return versions("scikit-learn", "skops", "numpy", "scipy")

    def _load(self, data: bytes, options: Mapping[str, Any], *, trusted: bool) -> EstimatorModel:
        sio = skops_io()
        found = _untrusted_types(data, error=ModelLoadError)
        allowed = safe_types(found, from_file=False)
        if trusted:
            allowed += [str(name) for name in options.get("trusted_types", ())]
        refused = sorted(set(found) - set(allowed))
        if refused:
            raise _untrusted(refused)
        try:
            estimator = sio.loads(data, trusted=allowed)
        except Exception as exc:
            raise ModelLoadError(
                f"skops could not load the model: {framework_message(exc)}"
            ) from exc
        return EstimatorModel.wrap(estimator, self.name)

    def _artifact(self, data: bytes, *, trusted: bool, from_file: bool) -> Artifact:
        found = _untrusted_types(data, error=UnreadableFileError)
        safe = set(safe_types(found, from_file=from_file))
        needing_trust = sorted(name for name in found if name not in safe)
        if needing_trust and not trusted:
            raise _untrusted(needing_trust)
        return Artifact(
            runtime=self.name,
            data=data,
            suffix=SUFFIX,
            options={"trusted_types": needing_trust},
            trusted_types=tuple(needing_trust),
        )


def skops_io() -> ModuleType:
    """``skops.io``, imported without the frameworks a model of this runtime never uses.

    Importing ``skops.io`` lists scikit-learn's estimators (``sklearn.utils.all_estimators``),
    which walks scikit-learn's packages with ``pkgutil.walk_packages`` — and walking imports
    every package, including the vendored ``sklearn.externals.array_api_compat.torch`` (which
    imports torch: about a gigabyte and seconds per server process) and its cupy and dask
    siblings. No estimator lives there (``all_estimators`` skips ``externals`` anyway), so
    while ``skops.io`` is first imported those frameworks are refused: ``walk_packages``
    skips a package whose import fails, and the estimator list comes out the same.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    with refusing_imports(_NOT_FOR_SKOPS):
        return require("skops.io")


def safe_types(names: Sequence[str], *, from_file: bool) -> list[str]:
    """The ``names`` (skops's untrusted types) that Dockyard trusts; see the module docs.

    ``from_file`` marks content someone else produced: then the types skops distrusts for
    their content (tree node storage) are not trusted either.
    """
    content_checked: frozenset[str] = frozenset()
    if from_file:
        skops_io()
        exceptions = require("skops.io.exceptions")
        content_checked = frozenset(exceptions.UNTRUSTED_TYPE_REASONS)
    return [
        name
        for name in names
        if name not in content_checked and (name in _ALWAYS_SAFE or _is_library_class(name))
    ]


@lru_cache(maxsize=1024)
def _is_library_class(name: str) -> bool:
    if name.startswith("sklearn."):
        cls = _resolve_class(name)
        return (
            cls is not None
            and cls.__module__.startswith("sklearn.")
            and not cls.__module__.startswith(_SKLEARN_EXCLUDED)
        )
    if name.startswith("numpy."):
        import numpy as np

        cls = _resolve_class(name)
        return cls is not None and issubclass(cls, np.generic | np.dtype)
    if name.startswith("scipy.sparse."):
        from scipy import sparse

        cls = _resolve_class(name)
        return cls is not None and issubclass(cls, sparse.spmatrix | sparse.sparray)
    return False


def _resolve_class(name: str) -> type | None:
    """The class ``name`` (``package.module.Class``) refers to, or ``None``.

    Called only for names under the trusted libraries' prefixes; imports the module part
    like skops would, refusing dunder parts (``numpy.f2py.__main__`` runs code on import).
    """
    parts = name.split(".")
    if any(part.startswith("__") or not part.isidentifier() for part in parts):
        return None
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
        return found if isinstance(found, type) else None
    return None


def _untrusted_types(data: bytes, *, error: type[DockyardError]) -> list[str]:
    sio = skops_io()
    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise error(f"Not a readable skops file: {framework_message(exc)}") from exc


def _untrusted(names: Sequence[str]) -> UntrustedModelError:
    return UntrustedModelError(
        "The model contains types Dockyard does not trust by default: " + ", ".join(names) + ".",
        hint="Loading them could run code they bring along. If you trust where the model "
        "came from, pass trusted=True (CLI: --trusted); the types are recorded in the "
        "audit log.",
        details={"untrusted_types": list(names)},
    )
