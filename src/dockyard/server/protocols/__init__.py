"""The wire protocols of the inference plane, as pure codecs: bytes in, what the validator
takes out; the model's answer in, bytes out. :mod:`~dockyard.server.protocols.v1` is
Dockyard's simple JSON protocol, :mod:`~dockyard.server.protocols.v2` the Open Inference
Protocol (KServe v2). Neither checks values: both hand the client's rows to the one
validator as they came (records, columns, rows or a 2-D array)."""
