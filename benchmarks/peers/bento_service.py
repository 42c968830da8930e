"""BentoML 1.4 peer: one service, one ``predict`` API, the joblib model in ``BENCH_MODEL``.

Run (from this folder, in BentoML's own virtualenv):
    BENCH_MODEL=lr.joblib bentoml serve bento_service:Classifier --port 3000
Request: ``POST /predict`` with ``{"instances": [[20 floats]]}``.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np


@bentoml.service
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api
    def predict(self, instances: list[list[float]]) -> list[int]:
        return self.model.predict(np.asarray(instances, dtype=np.float64)).tolist()
