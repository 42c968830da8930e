"""A compressed body over the limit once inflated is answered like one over it as sent: 413."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_inflating_past_the_body_limit_is_413(
    tmp_path: Path, start_server: Any, encoding: str, compress: Any
) -> None:
    X = np.arange(40, dtype=float).reshape(20, 2)
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, X[:, 0] > 20), "clf", sample=X)
        spec = DeploymentSpec.parse({"routes": [{"model": "clf@1.0.0"}]})
        DeploymentStore(registry.db).put("ep", spec, actor="tester")
    server = start_server(home, env={"DOCKYARD_MAX_BODY_BYTES": "100000"})
    server.wait_ready()

    body = b'{"inputs": [], "pad": "' + b" " * 1_000_000 + b'"}'
    sent = compress(body)
    assert len(sent) < 100_000 < len(body)
    response = httpx.post(
        f"{server.url}/v2/models/ep/infer",
        content=sent,
        headers={"content-encoding": encoding, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    error = response.json()
    assert error["code"] == "payload_too_large"
    assert "inflates to more than the limit of 100000 bytes" in error["error"]
