"""``POST /v1/endpoints/{name}/explain`` in process: the predict scope, the row limit, the one
error shape, its own metrics, and answers equal to ``RegisteredModel.explain``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_app_inprocess import ROW, assert_error, registry_home, running

from dockyard.registry import Registry
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

__all__ = ["registry_home"]  # the registry fixture, shared with the in-process app tests

ROWS = [ROW, {"a": -1.0, "b": 0.25, "c": 0.0}, {"a": 2.0, "b": 2.0, "c": -3.0}]


@pytest.fixture(scope="module")
def secured(registry_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Auth on, a token per scope, ``one`` serving clf@1.0.0, at most 3 rows per explain."""
    home = tmp_path_factory.mktemp("explain-api") / "home"
    shutil.copytree(registry_home, home)
    settings = Settings(
        home=home, user="tester", auth=True, poll_interval_s=0.05, explain_max_rows=3
    )
    with Registry.open(settings) as registry:
        store = TokenStore(registry.db)
        tokens = {
            scope: {
                "authorization": "Bearer " + store.create(f"t-{scope}", [scope], actor="tester")[1]
            }
            for scope in ("read", "predict", "deploy")
        }
    with running(settings) as app:
        answer = app.put(
            "/api/deployments/one", json={"model": "clf@1.0.0"}, headers=tokens["deploy"]
        )
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while app.get("/v2/models/one/ready", headers=tokens["read"]).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield app, tokens, home


def test_explain_needs_the_predict_scope(secured: Any) -> None:
    app, tokens, _ = secured
    path, body = "/v1/endpoints/one/explain", {"instances": ROWS}
    assert_error(app.post(path, json=body), 401, "unauthenticated")
    assert_error(app.post(path, json=body, headers=tokens["read"]), 403, "forbidden")
    assert app.post(path, json=body, headers=tokens["predict"]).status_code == 200


def test_the_answer_is_the_registered_models_explanation(secured: Any) -> None:
    app, tokens, home = secured
    answer = app.post(
        "/v1/endpoints/one/explain", json={"instances": ROWS}, headers=tokens["predict"]
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == "clf@1.0.0"
    assert body["method"].startswith("exact linear")
    assert body["columns"] == ["a", "b", "c"]
    with Registry.open(Settings(home=home, user="tester")) as registry:
        expected = registry.load("clf@1.0.0").explain(ROWS).to_dict()
    assert body["explanations"] == expected["explanations"]
    for row in body["explanations"]:
        target = body["targets"][0]
        total = row["base"][target] + sum(row["attributions"][target].values())
        assert np.isclose(total, row["output"][target], atol=1e-9)


def test_more_rows_than_the_limit_is_413_and_explains_nothing(secured: Any) -> None:
    app, tokens, _ = secured
    answer = app.post(
        "/v1/endpoints/one/explain", json={"instances": [*ROWS, ROW]}, headers=tokens["predict"]
    )
    assert_error(answer, 413, "payload_too_large")


def test_bad_input_is_the_one_error_shape(secured: Any) -> None:
    app, tokens, _ = secured
    headers = tokens["predict"]
    assert_error(app.post("/v1/endpoints/one/explain", json={"rows": 1}, headers=headers), 400)
    bad = {"instances": [{"a": "x", "b": 1.0, "c": 1.0}]}
    assert_error(app.post("/v1/endpoints/one/explain", json=bad, headers=headers), 400)
    method = {"instances": ROWS, "method": "magic"}
    assert_error(app.post("/v1/endpoints/one/explain", json=method, headers=headers), 400)
    assert_error(app.post("/v1/endpoints/nope/explain", json=bad, headers=headers), 404)
    empty = {"instances": []}
    assert_error(app.post("/v1/endpoints/one/explain", json=empty, headers=headers), 400)


def test_explain_has_its_own_metrics(secured: Any) -> None:
    app, tokens, _ = secured
    app.post("/v1/endpoints/one/explain", json={"instances": ROWS}, headers=tokens["predict"])
    text = app.get("/metrics", headers=tokens["read"]).text
    assert 'dockyard_explain_requests_total{endpoint="one",status="200"}' in text
    assert "dockyard_explain_rows_total" in text


def test_lime_on_request(secured: Any) -> None:
    app, tokens, _ = secured
    answer = app.post(
        "/v1/endpoints/one/explain",
        json={"instances": ROWS[:1], "method": "lime"},
        headers=tokens["predict"],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["method"] == "lime"
    assert answer.json()["additive"] is False


def test_the_route_is_in_the_openapi_document(secured: Any) -> None:
    app, tokens, _ = secured
    paths = app.get("/openapi.json", headers=tokens["read"]).json()["paths"]
    assert "post" in paths["/v1/endpoints/{name}/explain"]


def test_the_card_route_needs_the_read_scope_and_speaks_three_formats(secured: Any) -> None:
    app, tokens, _ = secured
    path = "/api/models/clf/versions/1.0.0/card"
    assert_error(app.get(path), 401, "unauthenticated")
    assert_error(app.get(path, headers=tokens["predict"]), 403, "forbidden")
    card = app.get(path, headers=tokens["read"]).json()
    assert card["ref"] == "clf@1.0.0"
    assert [entry["endpoint"] for entry in card["live"]] == ["one"]
    assert card["importance"]["method"].startswith("exact linear")
    markdown = app.get(path, params={"format": "md"}, headers=tokens["read"])
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Model card: clf@1.0.0")
    page = app.get(path, params={"format": "html"}, headers=tokens["read"])
    assert page.headers["content-type"].startswith("text/html")
    assert "<h2>Live status</h2>" in page.text
    assert "http" not in page.text.split("<body>")[0]  # nothing loaded from anywhere
    bad = app.get(path, params={"format": "pdf"}, headers=tokens["read"])
    assert_error(bad, 400, "invalid_request")
    missing = app.get("/api/models/clf/versions/9.9.9/card", headers=tokens["read"])
    assert_error(missing, 404)
