"""Monitoring: what happens to a model once it serves.

records.py       what the log records (Source, ModelCall): plain types the request path
                 builds, importing nothing heavy
predictions.py   the prediction log: a bounded buffer on the request path, flushed to
                 Parquet segments by a background thread
encoding.py      the log's conversion: buffered requests to numpy columns, then Arrow tables
store.py         where the log and feedback live (fsspec: a folder or S3) and how windows
                 of them are read (DuckDB)
feedback.py      late ground-truth labels, joined to predictions by request id
drift.py         drift statistics against a reference profile or an earlier window (pure)
performance.py   accuracy and friends from labels; estimated accuracy without them (pure)
alerts.py        alert rules and their evaluation (pure, injected clock)
webhooks.py      signed webhook delivery and retraining commands (I/O)
service.py       the composition: windows in, drift/performance/alert values out; the
                 server's periodic monitor loop and the CLI both use it
report.py        the self-contained offline HTML report
"""
