"""The Open Inference Protocol (KServe v2) codec: request bodies in, response bodies out.

Pure: no I/O and no web framework, so the REST handler (and a gRPC one later) share it and it
is unit-tested against the unmodified ``tritonclient`` and ``kserve`` encoders. The wire
types are in :mod:`~dockyard.server.protocols.v2.tensors`; requests are decoded (and their
values handed to the validator as they came: one 2-D tensor as its array, one tensor per
column as named columns) in :mod:`~dockyard.server.protocols.v2.decode` and
:mod:`~dockyard.server.protocols.v2.tabular` (the binary extension's data part, and the
binary headers decoded lately, in :mod:`~dockyard.server.protocols.v2.binary`; the JSON
layouts decoded lately in :mod:`~dockyard.server.protocols.v2.layouts`; JSON of many
floats read by simdjson in :mod:`~dockyard.server.protocols.json_numbers`, shared with v1);
responses encoded in :mod:`~dockyard.server.protocols.v2.encode`; the metadata bodies built
in :mod:`~dockyard.server.protocols.v2.metadata`. Each module states its policies at the top.
"""

from dockyard.server.protocols.v2.binary import BinaryHeaders
from dockyard.server.protocols.v2.decode import decode_request
from dockyard.server.protocols.v2.encode import datatype_of, encode_response, plain_response
from dockyard.server.protocols.v2.layouts import JsonLayouts
from dockyard.server.protocols.v2.metadata import model_metadata, server_metadata
from dockyard.server.protocols.v2.tabular import rows_as_sent, tabular_input
from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    ColumnBlock,
    InferRequest,
    OutputTensor,
    RequestedOutput,
    Tensor,
)

__all__ = [
    "DATATYPES",
    "BinaryHeaders",
    "ColumnBlock",
    "InferRequest",
    "JsonLayouts",
    "OutputTensor",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "decode_request",
    "encode_response",
    "model_metadata",
    "plain_response",
    "rows_as_sent",
    "server_metadata",
    "tabular_input",
]
