"""A helper for tests of the v2 decoder's shortcuts: two decoded requests alike."""

from __future__ import annotations

import numpy as np

from dockyard.server.protocols.v2 import InferRequest


def assert_same_request(got: InferRequest, expected: InferRequest) -> None:
    """``got`` is ``expected``: id, outputs, parameters, and every input's name, datatype,
    shape, parameters, dtype and values (NaN equal to NaN, -0.0 apart from 0.0), in the same
    container (tensors, or one ``ColumnBlock``)."""
    assert (got.id, got.outputs, got.binary_output) == (
        expected.id,
        expected.outputs,
        expected.binary_output,
    )
    assert dict(got.parameters) == dict(expected.parameters)
    assert type(got.inputs) is type(expected.inputs)
    assert len(got.inputs) == len(expected.inputs)
    for mine, theirs in zip(got.inputs, expected.inputs, strict=True):
        assert (mine.name, mine.datatype, mine.shape) == (
            theirs.name,
            theirs.datatype,
            theirs.shape,
        )
        assert dict(mine.parameters) == dict(theirs.parameters)
        assert mine.data.dtype == theirs.data.dtype
        np.testing.assert_array_equal(mine.data, theirs.data)  # NaN equals NaN
        if got.finite:  # said read from plain JSON numbers: then no NaN or infinity
            assert mine.data.dtype.kind == "f"
            assert np.isfinite(theirs.data).all()
        if mine.data.dtype.kind == "f":
            assert np.signbit(mine.data).tolist() == np.signbit(theirs.data).tolist()
