"""Attack: ``PUT /api/models/{m}/aliases/production`` with a hand-written ``gate`` object (no
requirements, ``signature.checked: false``) moved ``production`` (issue 13, item 4).

A protected alias now moves only on a gate result the registry recorded (a ``gate.evaluated``
event, named by its id): unaltered, passing, with requirements, for that candidate, against
the version the alias points at now (signatures compared), and recent. Each test moves its
own protected alias on one ``dockyard serve --auth`` process, with a deploy token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _edge import bearer, make_token

from _server import ServerProcess
from dockyard.deploy.gate import evaluate_gate
from dockyard.deploy.promotion import RecordedGate, record_gate
from dockyard.deploy.requirements import parse_requirement
from dockyard.registry import Registry
from dockyard.settings import Settings

ALIASES = [
    "production",
    "cli",
    "forged",
    "tampered",
    "other",
    "stale",
    "moved",
    "unsigned",
    "bycli",
]


@dataclass
class Target:
    home: Path
    settings: Settings
    holdout: Path
    server: ServerProcess
    headers: dict[str, str]

    def put(self, alias: str, version: str, gate: Any = None) -> httpx.Response:
        body: dict[str, Any] = {"version": version}
        if gate is not None:
            body["gate"] = gate
        return httpx.put(
            f"{self.server.url}/api/models/diabetes/aliases/{alias}",
            json=body,
            headers=self.headers,
            timeout=30,
        )

    def gate(self, candidate: str, against: str | None, *requirements: str) -> RecordedGate:
        """What ``dockyard gate`` does, in-process on the same registry database."""
        import pandas as pd

        with Registry.open(self.settings) as registry:
            result = evaluate_gate(
                registry,
                candidate,
                against,
                pd.read_parquet(self.holdout),
                "target",
                [parse_requirement(text) for text in requirements],
                latency_rows=5,
            )
            return record_gate(registry, result, actor="ci")

    def point(self, alias: str, version: str) -> None:
        """Someone with the database moves an alias (below every surface's policy)."""
        with Registry.open(self.settings) as registry:
            registry.set_alias(f"diabetes@{version}", alias)

    def where(self, alias: str) -> str | None:
        with Registry.open(self.settings) as registry:
            return registry.get_model("diabetes").aliases.get(alias)


pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    home = tmp_path_factory.mktemp("gates")
    data = load_diabetes(as_frame=True)
    holdout = home / "holdout.parquet"
    data.frame.to_parquet(holdout)
    settings = Settings(home=home, user="tester")
    with Registry.open(settings) as registry:
        for alpha in (1.0, 0.5, 2.0):  # 1.0.0, 1.0.1, 1.0.2: each with a signature
            registry.register(
                Ridge(alpha=alpha).fit(data.data, data.target),
                "diabetes",
                sample=data.data,
                y=data.target,
                accelerate=False,
            )
        registry.register(  # 1.1.0: no sample, so no signature to compare with
            Ridge().fit(data.data, data.target), "diabetes", version="1.1.0", accelerate=False
        )
        for alias in ALIASES:
            registry.set_alias("diabetes@1.0.0", alias)
    secret = make_token(settings, "ci", "deploy")
    server = ServerProcess(
        home, args=("--auth",), env={"DOCKYARD_PROTECTED_ALIASES": json.dumps(ALIASES)}
    )
    try:
        server.wait_ready()
        yield Target(home, settings, holdout, server, bearer(secret))
    finally:
        server.stop()


def refused(response: httpx.Response, status: int, *phrases: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "code", "details"}
    for phrase in phrases:
        assert phrase in body["error"], body["error"]


def test_the_documented_flow_dockyard_gate_json_sent_as_gate_moves_the_alias(
    target: Target,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(target.home), DOCKYARD_USER="ci")
    gated = subprocess.run(
        [
            sys.executable, "-m", "dockyard", "gate", "diabetes@1.0.1",
            "--against", "diabetes@cli", "--data", str(target.holdout), "--target", "target",
            "--require", "rmse <= baseline * 1.5", "--json",
        ],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert gated.returncode == 0, gated.stderr
    output = json.loads(gated.stdout)
    assert isinstance(output["id"], int)
    moved = target.put("cli", "1.0.1", output)
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == "1.0.1"
    with Registry.open(target.settings) as registry:
        event = registry.events(action="alias.set", model="diabetes", limit=1)[0]
        recorded = registry.events(action="gate.evaluated", limit=1000)
    assert event.after == {"alias": "cli", "version": "1.0.1"}
    assert event.details["gate"]["id"] == output["id"]
    assert output["id"] in [e.id for e in recorded]


def test_a_hand_written_gate_is_refused(target: Target) -> None:
    forged = {
        "passed": True,
        "candidate": "diabetes@1.0.2",
        "baseline": None,
        "against": None,
        "task": "regression",
        "target": "target",
        "data": {},
        "requirements": [],
        "signature": {"checked": False, "problems": [], "notes": []},
        "metrics": {"candidate": {}, "baseline": None},
        "failures": [],
    }
    refused(target.put("forged", "1.0.2", forged), 400, "has no id", "dockyard gate")
    with Registry.open(target.settings) as registry:
        other_event = registry.events(action="version.register", limit=1)[0].id
    for gate_id in (other_event, 10**9, -1):
        refused(
            target.put("forged", "1.0.2", {**forged, "id": gate_id}),
            400,
            f"No gate result #{gate_id} was recorded",
        )
    for not_an_id in ("1", True, 1.5, None):
        refused(target.put("forged", "1.0.2", {**forged, "id": not_an_id}), 400, "has no id")
    # an unprotected alias does not need a gate, but one it carries must be recorded too
    refused(target.put("staging", "1.0.2", forged), 400, "has no id")
    assert target.where("forged") == "1.0.0"
    assert target.where("staging") is None


def test_a_tampered_recorded_gate_is_refused(target: Target) -> None:
    failed = target.gate("diabetes@1.0.2", "diabetes@tampered", "rmse <= baseline * 0.5")
    assert not failed.result.passed
    sent = failed.to_dict()
    refused(target.put("tampered", "1.0.2", sent), 400, "The gate for diabetes@1.0.2 failed")

    flipped = {
        **sent,
        "passed": True,
        "failures": [],
        "requirements": [{**r, "passed": True} for r in sent["requirements"]],
    }
    refused(
        target.put("tampered", "1.0.2", flipped),
        400,
        f"differs from gate #{failed.id} as recorded (failures, passed, requirements)",
    )
    loosened = {**sent, "requirements": [{**sent["requirements"][0], "requirement": "rmse > 0"}]}
    refused(target.put("tampered", "1.0.2", loosened), 400, "(requirements)")

    passed = target.gate("diabetes@1.0.1", "diabetes@tampered", "rmse <= baseline * 1.5")
    assert passed.result.passed
    recandidated = {**passed.to_dict(), "candidate": "diabetes@1.0.2"}
    refused(target.put("tampered", "1.0.2", recandidated), 400, "(candidate)")
    rejuvenated = {**passed.to_dict(), "evaluated_at": datetime.now(UTC).isoformat()}
    refused(target.put("tampered", "1.0.1", rejuvenated), 400, "(evaluated_at)")
    borrowed = {**sent, "id": passed.id}  # the failing body under a passing gate's id
    refused(target.put("tampered", "1.0.2", borrowed), 400, f"gate #{passed.id}")
    assert target.where("tampered") == "1.0.0"


def test_a_gate_for_another_candidate_is_refused(target: Target) -> None:
    passed = target.gate("diabetes@1.0.1", "diabetes@other", "rmse <= baseline * 1.5")
    refused(
        target.put("other", "1.0.2", passed.to_dict()),
        400,
        f"Gate #{passed.id} is for diabetes@1.0.1, not diabetes@1.0.2",
    )
    assert target.where("other") == "1.0.0"


def test_a_stale_gate_is_refused(target: Target) -> None:
    strict = ServerProcess(
        target.home,
        args=("--auth",),
        env={
            "DOCKYARD_PROTECTED_ALIASES": json.dumps(ALIASES),
            "DOCKYARD_GATE_MAX_AGE_S": "1",
        },
    )
    try:
        strict.wait_ready()
        passed = target.gate("diabetes@1.0.1", "diabetes@stale", "rmse <= baseline * 1.5")
        while (datetime.now(UTC) - passed.evaluated_at).total_seconds() <= 1.05:
            time.sleep(0.05)  # the gate's age passes the 1 s limit: a clock condition
        response = httpx.put(
            f"{strict.url}/api/models/diabetes/aliases/stale",
            json={"version": "1.0.1", "gate": passed.to_dict()},
            headers=target.headers,
            timeout=30,
        )
        refused(response, 400, f"Gate #{passed.id} was evaluated", "DOCKYARD_GATE_MAX_AGE_S")
        assert target.where("stale") == "1.0.0"
    finally:
        strict.stop()
    assert target.put("stale", "1.0.1", passed.to_dict()).status_code == 200  # 24 h default


def test_a_gate_reused_after_the_alias_moved_or_for_another_alias_is_refused(
    target: Target,
) -> None:
    passed = target.gate("diabetes@1.0.1", "diabetes@moved", "rmse <= baseline * 1.5")
    assert target.put("moved", "1.0.1", passed.to_dict()).status_code == 200
    target.point("moved", "1.0.0")  # rolled back: the same gate must not undo that
    refused(
        target.put("moved", "1.0.1", passed.to_dict()),
        409,
        f"Gate #{passed.id} already moved diabetes@moved to 1.0.1",
    )
    target.point("moved", "1.0.2")  # someone moved it on since
    refused(
        target.put("moved", "1.0.1", passed.to_dict()),
        409,
        "diabetes@moved points at 1.0.2 now, but gate",
        "compared diabetes@1.0.1 with diabetes@1.0.0",
    )
    target.point("other", "1.0.2")
    refused(target.put("other", "1.0.1", passed.to_dict()), 409, "diabetes@other points at")
    unbased = target.gate("diabetes@1.0.1", None, "rmse <= 100")
    refused(target.put("other", "1.0.1", unbased.to_dict()), 409, "with no baseline")
    unconditional = target.gate("diabetes@1.0.1", "diabetes@other")
    refused(target.put("other", "1.0.1", unconditional.to_dict()), 400, "has no requirement")
    assert (target.where("moved"), target.where("other")) == ("1.0.2", "1.0.2")


def test_a_gate_that_could_not_compare_signatures_is_refused(target: Target) -> None:
    target.point("unsigned", "1.1.0")
    passed = target.gate("diabetes@1.0.1", "diabetes@unsigned", "mae <= 1000")
    assert passed.result.passed
    assert not passed.result.signature.checked
    refused(
        target.put("unsigned", "1.0.1", passed.to_dict()),
        400,
        "could not compare the signatures",
    )
    assert target.where("unsigned") == "1.1.0"


def test_models_alias_on_the_command_line_follows_the_same_policy(target: Target) -> None:
    """``dockyard models alias`` moves a protected alias only with a recorded, passing gate
    (``--gate ID``) against where it points now, as the API does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(target.home),
        DOCKYARD_USER="ci",
        DOCKYARD_PROTECTED_ALIASES=json.dumps(ALIASES),
    )

    def alias(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "models", "alias", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    bare = alias("diabetes@1.0.1", "bycli")
    assert bare.returncode != 0
    assert "is protected" in bare.stderr
    removed = alias("diabetes", "bycli", "--delete")  # would let the next gate skip a baseline
    assert removed.returncode != 0
    assert "not removed" in removed.stderr
    import joblib
    from sklearn.linear_model import Ridge

    model = target.home / "ridge.joblib"
    joblib.dump(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), model)
    with Registry.open(target.settings) as registry:
        versions = len(registry.list_versions("diabetes"))
    registered = subprocess.run(
        [
            sys.executable, "-m", "dockyard", "models", "register", "diabetes", str(model),
            "--alias", "bycli", "--trusted",
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert registered.returncode != 0
    assert "is protected" in registered.stderr
    with Registry.open(target.settings) as registry:
        assert len(registry.list_versions("diabetes")) == versions  # nothing registered
    failed = target.gate("diabetes@1.0.2", "diabetes@bycli", "rmse <= baseline * 0.5")
    assert not failed.result.passed
    refused_move = alias("diabetes@1.0.2", "bycli", "--gate", str(failed.id))
    assert refused_move.returncode != 0
    assert "failed, so bycli was not moved" in refused_move.stderr
    assert target.where("bycli") == "1.0.0"

    passed = target.gate("diabetes@1.0.1", "diabetes@bycli", "rmse <= baseline * 1.5")
    moved = alias("diabetes@1.0.1", "bycli", "--gate", str(passed.id), "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["version"] == "1.0.1"
    assert target.where("bycli") == "1.0.1"
    with Registry.open(target.settings) as registry:
        event = registry.events(action="alias.set", model="diabetes", limit=1)[0]
    assert event.details["gate"]["id"] == passed.id
