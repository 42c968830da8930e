"""Loading and serving a model imports its own framework only.

``import skops.io`` walks scikit-learn's packages, and walking imports the vendored
array-API shim for torch, which imports torch: a natively served scikit-learn model cost a
gigabyte and seconds per process. These run in fresh processes, where nothing else has
imported anything yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _server import mapped_libraries
from dockyard.registry import Registry
from dockyard.settings import Settings

OTHER_FRAMEWORKS = ["torch", "xgboost", "lightgbm", "cupy", "dask", "jax", "tensorflow"]


@pytest.fixture
def forest(sqlite_settings: Settings) -> tuple[Settings, pd.DataFrame]:
    """A random forest registered without an ONNX twin, so serving it goes through skops."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    label = (frame["a"] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, label)
    with Registry.open(sqlite_settings) as registry:
        registry.register(model, "forest", sample=frame, y=label, accelerate=False)
    return sqlite_settings, frame


def test_loading_and_predicting_a_sklearn_model_imports_no_other_framework(
    forest: tuple[Settings, pd.DataFrame],
) -> None:
    settings, frame = forest
    probe = (
        "import json, sys\n"
        "import dockyard\n"
        "model = dockyard.load('forest')\n"
        f"print(json.dumps(model.predict({frame.head(5).to_dict('records')!r}).tolist()))\n"
        f"print(json.dumps([m for m in {OTHER_FRAMEWORKS!r} if m in sys.modules]))\n"
        "print(json.dumps('skops.io' in sys.modules))\n"
    )
    env = {**os.environ, "DOCKYARD_HOME": str(settings.home)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    predictions, imported, through_skops = map(json.loads, result.stdout.strip().splitlines())

    assert len(predictions) == 5
    assert through_skops  # the path under test was taken
    assert imported == []


def test_a_server_of_a_sklearn_endpoint_maps_no_other_framework(
    forest: tuple[Settings, pd.DataFrame], start_server: Any
) -> None:
    import httpx

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore

    settings, frame = forest
    with Registry.open(settings) as registry:
        spec = DeploymentSpec.parse({"routes": [{"model": "forest"}]})
        DeploymentStore(registry.db).put("forest", spec, actor="tester")
    server = start_server(settings.home)
    server.wait_ready()
    rows = frame.head(3).to_dict("records")
    answer = httpx.post(f"{server.url}/v1/endpoints/forest/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text

    libraries = {Path(path).name for path in mapped_libraries(server.process.pid)}

    assert any(name.startswith("_tree.") for name in libraries)  # the forest is loaded
    assert not [name for name in libraries if name.startswith(("libtorch", "libxgboost"))]
    assert not [name for name in libraries if name.startswith("lib_lightgbm")]
