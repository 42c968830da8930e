"""The release actions' one home, :class:`~dockyard.deploy.service.Deployments`, on a real
SQLite registry: what it refuses changes nothing, and the alias policy holds for every
caller (the CLI and the API only translate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from dockyard.deploy.promotion import Promotion
from dockyard.deploy.service import Deployments, single_route
from dockyard.deploy.spec import DeploymentSpec
from dockyard.errors import InvalidRequestError, NotFoundError
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    labels = pd.Series([0, 0, 1, 1])
    with Registry.open(Settings(home=tmp_path, user="tester")) as registry:
        for c in (1.0, 0.5):  # m@1.0.0, m@1.0.1
            model = LogisticRegression(C=c).fit(frame, labels)
            registry.register(model, "m", sample=frame, y=labels, accelerate=False)
        yield registry


def test_a_deploy_naming_an_unknown_version_changes_nothing(registry: Registry) -> None:
    service = Deployments(registry)
    service.deploy("ep", single_route("m@1.0.0"), actor="tester")
    spec = DeploymentSpec.parse(
        {"routes": [{"model": "m@1.0.0", "weight": 100}], "shadows": [{"model": "m@9.9.9"}]}
    )
    with pytest.raises(NotFoundError, match=r"no version 9\.9\.9"):
        service.deploy("ep", spec, actor="tester")
    assert service.get("ep").revision == 1
    assert [r.version for r in service.resolve(service.get("ep").spec)] == ["m@1.0.0"]


def test_rollback_restores_the_previous_spec_as_a_new_revision(registry: Registry) -> None:
    service = Deployments(registry)
    service.deploy("ep", single_route("m@1.0.0"), actor="tester")
    service.deploy("ep", single_route("m@1.0.1"), actor="tester", reason="newer")
    back = service.rollback("ep", actor="tester")
    assert back.revision == 3
    assert back.spec.routes[0].model == "m@1.0.0"
    history = service.history("ep")
    assert [h["revision"] for h in history] == [3, 2, 1]
    assert history[0]["reason"] == "rollback to revision 1"


def test_a_protected_alias_moves_only_through_a_recorded_gate(registry: Registry) -> None:
    service = Deployments(registry, protected_aliases=["production"])
    with pytest.raises(InvalidRequestError, match="is protected"):
        service.move_alias("m@1.0.1", "production", actor="tester")
    with pytest.raises(InvalidRequestError, match="has no id"):
        service.move_alias("m@1.0.1", "production", actor="tester", gate={"passed": True})
    assert "production" not in registry.get_model("m").aliases
    moved = service.move_alias("m@1.0.1", "staging", actor="tester")  # unprotected
    assert not isinstance(moved, Promotion)
    assert registry.get_model("m").aliases == {"staging": "1.0.1"}
    # nor can a registration set it, or a removal clear the way for a comparison-free move
    with pytest.raises(InvalidRequestError, match="'production' is protected"):
        service.refuse_protected("m", ["staging", "production"])
    service.refuse_protected("m", ["staging", "canary"])
    registry.set_alias("m@1.0.0", "production")  # below every surface's policy
    with pytest.raises(InvalidRequestError, match="moved with a gate, not removed"):
        service.remove_alias("m", "production")
    service.remove_alias("m", "staging")
    assert registry.get_model("m").aliases == {"production": "1.0.0"}


def test_the_alias_policy_comes_from_settings(registry: Registry, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, protected_aliases=["gold"], gate_max_age_s=60)
    service = Deployments.from_settings(registry, settings)
    assert service.protected_aliases == {"gold"}
    assert service.gate_max_age_s == 60
    service.move_alias("m@1.0.0", "production", actor="tester")  # not protected here
    with pytest.raises(InvalidRequestError, match="'gold' is protected"):
        service.move_alias("m@1.0.0", "gold", actor="tester")


def test_rollout_actions_need_the_prediction_log(registry: Registry) -> None:
    with pytest.raises(RuntimeError, match="monitoring store"):
        Deployments(registry).pause("ep", actor="tester")
