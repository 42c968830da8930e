"""Ray Serve 2.x peer: one deployment with Ray's defaults, the joblib model given by path.

Run (in Ray's own virtualenv): python ray_app.py --port 8000 --model lr.joblib
Request: ``POST /predict`` with ``{"instances": [[20 floats]]}``. SIGTERM shuts Ray down.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import joblib
import numpy as np
import ray
from ray import serve
from starlette.requests import Request


@serve.deployment
class Classifier:
    def __init__(self, path: str) -> None:
        self.model = joblib.load(path)

    async def __call__(self, request: Request) -> dict[str, Any]:
        instances = (await request.json())["instances"]
        X = np.asarray(instances, dtype=np.float64)
        return {"predictions": self.model.predict(X).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ray.init(include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Classifier.bind(args.model), route_prefix="/predict")
    print("ray serve ready", flush=True)
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
