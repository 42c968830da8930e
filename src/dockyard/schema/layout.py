"""How a model wants its input: the one fact about a model both the schema and the runtimes need.

A runtime reports it (``LoadedModel.input_layout``), a signature records it, and validation
rebuilds requests in it. It lives here, below the runtimes, so that the pure schema never
imports a runtime.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["InputLayout"]

InputLayout = Literal["frame", "array"]
"""``frame``: the model wants a pandas DataFrame with named columns (sklearn fitted on a
DataFrame, LightGBM/XGBoost with categoricals). ``array``: a 2-D numeric array in column
order (ONNX with one tensor input, TorchScript, sklearn fitted on arrays)."""
