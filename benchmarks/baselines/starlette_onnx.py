"""Baseline 4: the naive server — Starlette and onnxruntime in a few lines, no validation.

Parses v1 records (``{"instances": [{"x0": ...}, ...]}``), builds an array in column order
(the model's input dtype), runs the ONNX model named by ``BASELINE_ONNX`` inline and answers
the labels. No schema, no metrics, no log, no batching: the floor a serving framework has to
justify itself against.

Run: BASELINE_ONNX=lr.onnx uvicorn --app-dir benchmarks/baselines starlette_onnx:app
"""

import os

import numpy as np
import onnxruntime as ort
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

session = ort.InferenceSession(os.environ["BASELINE_ONNX"], providers=["CPUExecutionProvider"])
feed, width, kind = (lambda i: (i.name, i.shape[1], i.type))(session.get_inputs()[0])
columns = [f"x{i}" for i in range(width)]
dtype = np.float64 if "double" in kind else np.float32


async def predict(request: Request) -> JSONResponse:
    records = (await request.json())["instances"]
    X = np.array([[record[c] for c in columns] for record in records], dtype=dtype)
    labels = session.run(None, {feed: X})[0]
    return JSONResponse({"predictions": labels.tolist()})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
