"""Signatures, input validation, reference profiles and data fingerprints (pure: no I/O).

- :func:`infer_signature` builds a :class:`Signature` from a training sample (probing the
  model for null and unseen-category tolerance when given ``accepts``);
- :class:`Validator` checks request input against a signature, reporting every problem at
  once, and rebuilds the exact dtypes the model was trained on;
- :func:`build_profile` summarises the sample in a bounded :class:`ReferenceProfile`;
- :func:`fingerprint` identifies the sample (:class:`DataFingerprint`);
- :func:`as_frame` and :func:`read_table` turn user data and data files into DataFrames
  (reading a file is the only I/O here).

Importing this package is cheap: each name loads its module (numpy, pandas) on first use, so
the layers above may import ``dockyard.schema.layout`` or ``dockyard.schema.labels`` without
paying for validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# eager, and light: the function must shadow its own module's name in this package
from dockyard.schema.fingerprint import DataFingerprint, fingerprint

if TYPE_CHECKING:
    from dockyard.schema.frames import as_frame, read_table
    from dockyard.schema.inference import (
        PROBE_ROWS,
        UNSEEN_PROBE_VALUE,
        infer_column,
        infer_output,
        infer_signature,
    )
    from dockyard.schema.problems import PROBLEM_LIMIT, Problem
    from dockyard.schema.profile import (
        QUANTILE_LEVELS,
        CategoricalProfile,
        FeatureProfile,
        NumericProfile,
        ReferenceProfile,
        build_profile,
        profile_values,
    )
    from dockyard.schema.signature import (
        STRING_CATEGORY_LIMIT,
        ColumnKind,
        ColumnSpec,
        OutputKind,
        OutputSpec,
        Signature,
    )
    from dockyard.schema.validation import ValidatedInput, Validator

__all__ = [
    "PROBE_ROWS",
    "PROBLEM_LIMIT",
    "QUANTILE_LEVELS",
    "STRING_CATEGORY_LIMIT",
    "UNSEEN_PROBE_VALUE",
    "CategoricalProfile",
    "ColumnKind",
    "ColumnSpec",
    "DataFingerprint",
    "FeatureProfile",
    "NumericProfile",
    "OutputKind",
    "OutputSpec",
    "Problem",
    "ReferenceProfile",
    "Signature",
    "ValidatedInput",
    "Validator",
    "as_frame",
    "build_profile",
    "fingerprint",
    "infer_column",
    "infer_output",
    "infer_signature",
    "profile_values",
    "read_table",
]

_LAZY = {
    "PROBE_ROWS": "dockyard.schema.inference",
    "PROBLEM_LIMIT": "dockyard.schema.problems",
    "QUANTILE_LEVELS": "dockyard.schema.profile",
    "STRING_CATEGORY_LIMIT": "dockyard.schema.signature",
    "UNSEEN_PROBE_VALUE": "dockyard.schema.inference",
    "CategoricalProfile": "dockyard.schema.profile",
    "ColumnKind": "dockyard.schema.signature",
    "ColumnSpec": "dockyard.schema.signature",
    "FeatureProfile": "dockyard.schema.profile",
    "NumericProfile": "dockyard.schema.profile",
    "OutputKind": "dockyard.schema.signature",
    "OutputSpec": "dockyard.schema.signature",
    "Problem": "dockyard.schema.problems",
    "ReferenceProfile": "dockyard.schema.profile",
    "Signature": "dockyard.schema.signature",
    "ValidatedInput": "dockyard.schema.validation",
    "Validator": "dockyard.schema.validation",
    "as_frame": "dockyard.schema.frames",
    "build_profile": "dockyard.schema.profile",
    "infer_column": "dockyard.schema.inference",
    "infer_output": "dockyard.schema.inference",
    "infer_signature": "dockyard.schema.inference",
    "profile_values": "dockyard.schema.profile",
    "read_table": "dockyard.schema.frames",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dockyard.schema' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
