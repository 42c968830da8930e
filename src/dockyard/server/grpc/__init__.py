"""The Open Inference Protocol over gRPC (``dockyard serve --grpc-port``; the ``grpc`` extra).

* ``inference.proto``: the service and messages (package ``inference``, service
  ``GRPCInferenceService``, the protocol's names, so unmodified clients call it), and the
  modules ``protoc`` generates from it (``inference_pb2*``; ``make protos``);
* :mod:`~dockyard.server.grpc.wire`: protobuf to and from the one v2 codec (pure);
* :mod:`~dockyard.server.grpc.service`: the calls and the listener, on the HTTP server's loop.

Nothing here is imported unless a gRPC port is configured.
"""
