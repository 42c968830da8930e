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

from _server import children, mapped_libraries
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


def test_a_server_of_an_onnx_endpoint_maps_no_scikit_learn_after_a_monitor_pass(
    sqlite_settings: Settings, start_server: Any
) -> None:
    """The monitor pass (drift over the log) runs on scipy and DuckDB, in the server's monitor
    process; scikit-learn's metrics (17 MiB) once loaded with them for nothing. The serving
    process maps none of the three, and the monitor process no scikit-learn."""
    import httpx
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    label = (frame["a"] > 0).astype(int)
    with Registry.open(sqlite_settings) as registry:
        registry.register(LogisticRegression().fit(frame, label), "lr", sample=frame, y=label)
        spec = DeploymentSpec.parse({"routes": [{"model": "lr"}], "monitoring": {"log": True}})
        DeploymentStore(registry.db).put("lr", spec, actor="tester")
    env = {"DOCKYARD_MONITOR_INTERVAL_S": "0.3", "DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2"}
    server = start_server(sqlite_settings.home, env=env)
    server.wait_ready()
    rows = frame.head(50).to_dict("records")
    answer = httpx.post(f"{server.url}/v1/endpoints/lr/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text

    def drift_gauge() -> bool:  # a monitor pass has judged drift over the logged rows
        text = httpx.get(f"{server.url}/metrics").text
        return any(line.startswith("dockyard_drift_share{") for line in text.splitlines())

    _until(drift_gauge)
    serving = mapped_libraries(server.process.pid)
    assert any("onnxruntime" in path for path in serving)  # served by the ONNX twin
    assert not [path for path in serving if "_duckdb" in path or "/scipy/" in path]
    assert not [path for path in serving if "/sklearn/" in path]
    helpers = [mapped_libraries(pid) for pid in children(server.process.pid)]
    monitor = [found for found in helpers if any("_duckdb" in path for path in found)]
    assert len(monitor) == 1  # the pass's libraries are loaded there
    assert not [path for path in monitor[0] if "/sklearn/" in path]


def _until(condition: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "no monitor pass within the time allowed"
        time.sleep(0.1)
