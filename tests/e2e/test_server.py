"""The server end to end: a real process on loopback, real HTTP, the registry it follows."""

from __future__ import annotations

import gzip
import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from dockyard.registry import Registry


def _post(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, content=orjson.dumps(body), timeout=30, **kwargs)


def test_v1_records_and_columns_give_the_models_answers(served: dict[str, Any]) -> None:
    server, X = served["server"], served["X"]
    model = served["models"]["1.0.0"]
    rows = X.head(5)
    by_records = _post(
        f"{server.url}/v1/endpoints/cancer/predict",
        {"instances": rows.to_dict(orient="records")},
    )
    assert by_records.status_code == 200, by_records.text
    body = by_records.json()
    assert body["model"] == "cancer"
    assert body["version"] == "1.0.0"
    assert body["predictions"] == model.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), rtol=0, atol=1e-6)
    assert body["classes"] == [0, 1]
    assert len(body["request_id"]) >= 16
    assert by_records.headers["x-request-id"] == body["request_id"]

    by_columns = _post(
        f"{server.url}/v1/endpoints/cancer/predict",
        {"inputs": rows.to_dict(orient="list")},
    )
    assert by_columns.json()["predictions"] == body["predictions"]


def test_categorical_model_with_missing_values(served: dict[str, Any]) -> None:
    server = served["server"]
    model, PX = served["penguins"]
    rows = PX.head(8)
    records = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        for record in rows.astype(object).to_dict(orient="records")
    ]
    response = _post(f"{server.url}/v1/endpoints/penguins/predict", {"instances": records})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(rows).tolist()


def test_bad_input_lists_every_problem(served: dict[str, Any]) -> None:
    server, X = served["server"], served["X"]
    record = X.head(1).to_dict(orient="records")[0]
    record["mean radius"] = "big"
    del record["mean texture"]
    response = _post(f"{server.url}/v1/endpoints/cancer/predict", {"instances": [record]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "schema_validation"
    columns = {p["column"] for p in body["details"]["problems"]}
    assert columns == {"mean radius", "mean texture"}


@pytest.mark.parametrize(
    ("path", "payload", "status", "code"),
    [
        ("/v1/endpoints/nope/predict", {"instances": [{}]}, 404, "not_found"),
        ("/v1/endpoints/cancer/predict", {"rows": []}, 400, "invalid_request"),
        ("/v1/endpoints/cancer/predict", None, 400, "invalid_request"),
        ("/v2/models/nope/infer", {"inputs": []}, 404, "not_found"),
        ("/v2/models/cancer/versions/9.9.9/infer", {"inputs": []}, 404, "not_found"),
        ("/api/models/nope", None, 404, "model_not_found"),
        ("/no/such/route", None, 404, "not_found"),
    ],
)
def test_errors_have_one_shape(
    served: dict[str, Any], path: str, payload: Any, status: int, code: str
) -> None:
    server = served["server"]
    if (payload is None and path.startswith("/api")) or path.startswith("/no"):
        response = httpx.get(f"{server.url}{path}", timeout=10)
    else:
        content = b"{not json" if payload is None else orjson.dumps(payload)
        response = httpx.post(f"{server.url}{path}", content=content, timeout=10)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert "details" in body
    assert "Traceback" not in response.text


def test_body_limit_is_413(served: dict[str, Any]) -> None:
    server = served["server"]
    huge = b'{"instances": [' + b'{"a": 1},' * 2_000_000 + b'{"a": 1}]}'
    response = httpx.post(f"{server.url}/v1/endpoints/cancer/predict", content=huge, timeout=30)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_health_readiness_metadata_and_metrics(served: dict[str, Any]) -> None:
    server = served["server"]
    assert httpx.get(f"{server.url}/healthz").json() == {"live": True}
    assert httpx.get(f"{server.url}/readyz").json() == {"ready": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json()["ready"] is True
    assert httpx.get(f"{server.url}/v2").json()["extensions"]
    meta = httpx.get(f"{server.url}/v2/models/cancer").json()
    assert meta["name"] == "cancer"
    assert [i["name"] for i in meta["inputs"]][:2] == ["mean radius", "mean texture"]
    assert httpx.get(f"{server.url}/v2/models/cancer/ready").json() == {
        "name": "cancer",
        "ready": True,
    }
    _post(
        f"{server.url}/v1/endpoints/cancer/predict",
        {"instances": served["X"].head(2).to_dict(orient="records")},
    )
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'dockyard_requests_total{endpoint="cancer"' in metrics
    assert "dockyard_request_duration_seconds_bucket" in metrics
    assert "dockyard_batch_rows" in metrics
    assert "dockyard_model_load_seconds" in metrics


def test_control_plane_lists_what_is_served(served: dict[str, Any]) -> None:
    server = served["server"]
    deployments = {d["name"]: d for d in httpx.get(f"{server.url}/api/deployments").json()}
    assert deployments["cancer"]["serving"][0]["version"].startswith("cancer@")
    assert deployments["cancer"]["error"] is None
    models = httpx.get(f"{server.url}/api/models").json()
    assert {m["name"] for m in models} == {"cancer", "penguins"}
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/v1/endpoints/{name}/predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_gzip_v2_request(served: dict[str, Any]) -> None:
    server, X = served["server"], served["X"]
    rows = X.head(3).to_numpy()
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    response = httpx.post(
        f"{server.url}/v2/models/cancer/infer",
        content=gzip.compress(orjson.dumps(body)),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"]["data"] == served["models"]["1.0.0"].predict(X.head(3)).tolist()


def test_alias_moves_swap_under_load_without_a_failed_request(served: dict[str, Any]) -> None:
    """20 alias moves while requests stream in: every request answered, both versions
    served, the endpoint ends on the alias's final target."""
    server, settings, X = served["server"], served["settings"], served["X"]
    payload = orjson.dumps({"instances": X.head(2).to_dict(orient="records")})
    stop = threading.Event()
    statuses: list[int] = []
    versions: set[str] = set()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(f"{server.url}/v1/endpoints/cancer/predict", content=payload)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["version"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        with Registry.open(settings) as registry:
            for i in range(20):
                target = "cancer@1.0.1" if i % 2 == 0 else "cancer@1.0.0"
                registry.set_alias(target, "production")
                _wait_for_version(server.url, target.split("@")[1])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert versions == {"1.0.0", "1.0.1"}


def _wait_for_version(url: str, version: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = httpx.get(f"{url}/api/deployments/cancer", timeout=10).json()["serving"]
        if served and served[0]["version"] == f"cancer@{version}":
            return
        time.sleep(0.05)
    raise AssertionError(f"server never switched to {version}")
