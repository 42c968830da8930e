"""Signatures, input validation, reference profiles and data fingerprints (pure: no I/O).

- :func:`infer_signature` builds a :class:`Signature` from a training sample (probing the
  model for null and unseen-category tolerance when given ``accepts``);
- :class:`Validator` checks request input against a signature, reporting every problem at
  once, and rebuilds the exact dtypes the model was trained on;
- :func:`build_profile` summarises the sample in a bounded :class:`ReferenceProfile`;
- :func:`fingerprint` identifies the sample (:class:`DataFingerprint`);
- :func:`as_frame` and :func:`read_table` turn user data and data files into DataFrames
  (reading a file is the only I/O here).
"""

from dockyard.schema._columns import PROBLEM_LIMIT, Problem
from dockyard.schema.fingerprint import DataFingerprint, fingerprint
from dockyard.schema.frames import as_frame, read_table
from dockyard.schema.inference import (
    PROBE_ROWS,
    UNSEEN_PROBE_VALUE,
    infer_column,
    infer_output,
    infer_signature,
)
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
