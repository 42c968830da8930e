"""Batch scoring: files of any size scored with a registered version, in record batches.

The pieces, each thin: :mod:`~dockyard.batch.inputs` finds the input files (local or any
fsspec URL) and streams them as Arrow record batches; :mod:`~dockyard.batch.scorer` validates a
batch through the version's signature (the server's one validation path), sets bad rows
aside with every problem, and predicts; :mod:`~dockyard.batch.output` writes the output and
the rejects under temporary names and publishes them by renaming; :mod:`~dockyard.batch.engine`
runs the scorer on worker processes in order with bounded memory (:mod:`~dockyard.batch.ray`
on Ray Data); :mod:`~dockyard.batch.service` is the one function the CLI and the Python API
call, which also records the job (audit events) and, for hybrid jobs, the prediction log.
"""
