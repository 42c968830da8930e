"""Server lifecycle: failed loads, graceful shutdown, several workers, the CLI around it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, Any]:
    """A registry with two versions of a small classifier, deployed as endpoint 'm'."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "m", sample=X, y=y, aliases=["prod"])
        registry.register(LogisticRegression(C=0.01).fit(X, y), "m", sample=X, y=y)
        DeploymentStore(registry.db).put(
            "m", DeploymentSpec.parse({"routes": [{"model": "m@prod"}]}), actor="tester"
        )
    return home, X


def _serving(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/api/deployments/m", timeout=10).json())


def _until(condition: Any, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s")


def _row(X: Any) -> bytes:
    return orjson.dumps({"instances": [{f"x{i}": float(v) for i, v in enumerate(X[0])}]})


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    home: Any, start_server: Any
) -> None:
    path, X = home
    settings = Settings(home=path, user="tester")
    server = start_server(path)
    server.wait_ready()
    with Registry.open(settings) as registry:
        broken = registry.get_version("m@1.0.1")
        for digest in {broken.digest, (broken.accelerated or {}).get("digest")} - {None}:
            Path(registry.artifacts.path(str(digest))).write_bytes(b"corrupted")
        registry.set_alias("m@1.0.1", "prod")
    deadline = time.monotonic() + 30
    while _serving(server.url)["error"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    status = _serving(server.url)
    assert "corrupted" in status["error"]
    assert status["serving"][0]["version"] == "m@1.0.0"
    answer = httpx.post(f"{server.url}/v1/endpoints/m/predict", content=_row(X))
    assert answer.status_code == 200
    assert answer.json()["version"] == "1.0.0"
    assert httpx.get(f"{server.url}/readyz").status_code == 200  # still serving


def test_sigterm_finishes_in_flight_requests(home: Any, start_server: Any) -> None:
    path, X = home
    server = start_server(path)
    server.wait_ready()
    statuses: list[int] = []
    errors: list[BaseException] = []
    payload = _row(X)

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(200):
                try:
                    statuses.append(
                        http.post(
                            f"{server.url}/v1/endpoints/m/predict", content=payload
                        ).status_code
                    )
                except httpx.HTTPError as exc:  # refused after shutdown began: expected
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    _until(lambda: len(statuses) >= 20 or errors)  # the clients are answered: under load
    code = server.stop()
    for thread in threads:
        thread.join()
    # uvicorn finishes shutting down, then re-raises SIGTERM so the exit status tells why
    assert code in (0, -signal.SIGTERM), server.log.read_text()
    assert statuses
    assert set(statuses) == {200}  # every request that got an answer succeeded
    # After shutdown begins, new connections are refused and idle keep-alive connections are
    # closed (a request racing that close sees a transport error); never an HTTP error.
    assert all(isinstance(e, httpx.TransportError) for e in errors), errors
    assert "Application shutdown complete" in server.log.read_text()


def test_two_workers_share_the_port_and_metrics(
    home: Any, start_server: Any, tmp_path: Path
) -> None:
    path, X = home
    scratch = tmp_path / "scratch"  # where the workers' shared metric files go
    scratch.mkdir()
    server = start_server(path, "--workers", "2", env={"TMPDIR": str(scratch)})
    server.wait_ready()
    shared = list(scratch.glob("dockyard-metrics-*"))
    assert len(shared) == 1
    with httpx.Client(timeout=30) as http:
        for _ in range(40):
            response = http.post(f"{server.url}/v1/endpoints/m/predict", content=_row(X))
            assert response.status_code == 200

        def counted() -> float:
            metrics = http.get(f"{server.url}/metrics").text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith('dockyard_requests_total{endpoint="m"')
            )

        total = _until(lambda: (found := counted()) >= 40 and found)
    assert total == 40  # summed over both workers, whichever answered the scrape
    assert server.stop() == 0
    assert not shared[0].exists()  # removed at exit, not left behind at every start


def test_deploy_and_predict_commands(home: Any, tmp_path: Path, start_server: Any) -> None:
    path, X = home
    env = {"DOCKYARD_HOME": str(path), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "dockyard"]
    result = subprocess.run(
        [*run, "deploy", "m2", "m@1.0.0", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["revision"] == 1
    refused = subprocess.run(
        [*run, "deploy", "m3", "ghost@prod"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 4
    assert refused.stderr.startswith("error: ")
    listed = subprocess.run(
        [*run, "deployments", "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert {d["name"] for d in json.loads(listed.stdout)} == {"m", "m2"}

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{f"x{i}": float(v) for i, v in enumerate(r)} for r in X[:3]]))
    server = start_server(path)
    server.wait_ready()
    predicted = subprocess.run(
        [*run, "predict", "m2", "--data", str(rows), "--url", server.url, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    body = json.loads(predicted.stdout)
    assert body["version"] == "1.0.0"
    assert len(body["predictions"]) == 3
    missing = subprocess.run(
        [*run, "predict", "nope", "--data", str(rows), "--url", server.url],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 4
    assert "nope" in missing.stderr


def test_demo_runs_end_to_end_without_serving(tmp_path: Path) -> None:
    env = {"DOCKYARD_HOME": str(tmp_path / "demo"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.demo", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for expected in (
        "cancer@production → 1.1.0",
        "Endpoint penguins revision 1",
        "/v1/endpoints/penguins/predict",
        "bad input refused",
    ):
        assert expected in result.stdout


@pytest.mark.parametrize(("budget_us", "compute"), [("1000000", "event loop"), ("0", "threads")])
def test_cheap_models_run_on_the_loop_or_the_threads_with_the_same_answers(
    home: Any, start_server: Any, budget_us: str, compute: str
) -> None:
    path, X = home
    server = start_server(path, env={"DOCKYARD_INLINE_COMPUTE_US": budget_us})
    server.wait_ready()
    served = _serving(server.url)["serving"][0]
    assert served["compute"] == compute
    if budget_us == "0":
        assert served["full_batch_us"] is None  # nothing to decide, nothing timed
    else:
        assert served["full_batch_us"] > 0
    answers = [
        httpx.post(
            f"{server.url}/v1/endpoints/m/predict",
            json={"instances": [{f"x{i}": float(v) for i, v in enumerate(row)}]},
            timeout=10,
        ).json()
        for row in X[:40]
    ]
    with Registry.open(Settings(home=path, user="tester")) as registry:
        expected = registry.load("m@1.0.0").model.predict(X[:40])
    assert [a["predictions"][0] for a in answers] == list(expected)


def _store_revision(path: Path, spec: dict[str, Any]) -> int:
    """Write a new revision of endpoint 'm' straight into the database, as a newer Dockyard
    would (no validation by this version); returns its number."""
    import sqlalchemy as sa

    from dockyard.registry import tables as t

    with Registry.open(Settings(home=path, user="tester")) as registry, registry.db.write() as conn:
        row = conn.execute(sa.select(t.deployments).where(t.deployments.c.name == "m")).one()
        revision = row.revision + 1
        now = datetime.now(UTC)
        conn.execute(
            t.deployments.update()
            .where(t.deployments.c.id == row.id)
            .values(revision=revision, spec=spec, updated_at=now, updated_by="newer")
        )
        conn.execute(
            t.deployment_revisions.insert().values(
                deployment_id=row.id,
                revision=revision,
                spec=spec,
                reason="written by a newer Dockyard",
                created_at=now,
                created_by="newer",
            )
        )
    return revision


def _verbose(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/readyz?verbose", timeout=10).json())


def test_a_stored_revision_from_a_newer_dockyard_never_stops_the_server(
    home: Any, start_server: Any
) -> None:
    path, X = home
    server = start_server(path)
    server.wait_ready()

    # a key this version does not know: left out, named in the log and in readiness
    _store_revision(
        path, {"routes": [{"model": "m@1.0.1", "weight": 100}], "batching": {"queue_policy": "x"}}
    )
    _until(lambda: _serving(server.url)["serving"][0]["version"] == "m@1.0.1")
    assert _verbose(server.url)["ignored_keys"] == {"m": ["batching.queue_policy"]}
    assert "revision 2: left out keys" in server.log.read_text()
    assert "batching.queue_policy" in server.log.read_text()

    # a value this version refuses even without the unknown keys: not loadable, the
    # endpoint keeps serving what it served, readiness says why
    _store_revision(
        path, {"routes": [{"model": "m@1.0.0", "weight": 100}], "batching": {"max_batch_size": 0}}
    )
    failures = _until(lambda: _verbose(server.url).get("failures"))
    assert "revision 3" in failures["m"]
    assert "max_batch_size" in failures["m"]
    assert _verbose(server.url)["endpoints"] == {"m": "ready"}
    answer = httpx.post(f"{server.url}/v1/endpoints/m/predict", content=_row(X))
    assert answer.status_code == 200
    assert answer.json()["version"] == "1.0.1"
    assert "could not load revision 3" in server.log.read_text()
    assert server.process.poll() is None

    # a server started on that store starts, ready, and says why 'm' is not served
    second = start_server(path)
    second.wait_ready()
    assert "revision 3" in _verbose(second.url)["failures"]["m"]
    assert httpx.post(f"{second.url}/v1/endpoints/m/predict", content=_row(X)).status_code == 503

    # a revision it can read is picked up by both
    _store_revision(path, {"routes": [{"model": "m@1.0.0", "weight": 100}]})
    for running in (server, second):
        # the second server serves nothing of 'm' until it reads a revision it can load
        _until(
            lambda url=running.url: [s["version"] for s in _serving(url)["serving"]] == ["m@1.0.0"]
        )
        assert "failures" not in _verbose(running.url) or not _verbose(running.url)["failures"]


def test_a_users_spec_with_an_unknown_key_is_still_refused(home: Any, start_server: Any) -> None:
    path, _ = home
    server = start_server(path)
    server.wait_ready()
    answer = httpx.put(
        f"{server.url}/api/deployments/m",
        json={"spec": {"routes": [{"model": "m@1.0.1"}], "batching": {"max_batch_sise": 8}}},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"
    assert "batching.max_batch_sise" in answer.json()["error"]
    assert _serving(server.url)["revision"] == 1
