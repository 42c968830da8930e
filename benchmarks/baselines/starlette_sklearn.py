"""Baseline 3: a Starlette endpoint calling scikit-learn ``predict`` on one request's rows.

The simplest honest server: parse the JSON records, build an array in column order, call
``predict`` inline on the event loop, answer the predictions. The model is the joblib file
named by ``BASELINE_MODEL``.

Run: BASELINE_MODEL=lr.joblib uvicorn --app-dir benchmarks/baselines starlette_sklearn:app
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

model = joblib.load(os.environ["BASELINE_MODEL"])
columns = [f"x{i}" for i in range(model.n_features_in_)]


async def predict(request: Request) -> JSONResponse:
    records = (await request.json())["instances"]
    X = np.array([[record[name] for name in columns] for record in records], dtype=np.float64)
    return JSONResponse({"predictions": model.predict(X).tolist()})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
