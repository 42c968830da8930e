"""The batching section of a deployment spec: the queue's wait bound is a setting, kept out
of the stored revision at its default (so a server from before the setting still reads it)."""

from __future__ import annotations

import pytest

from dockyard.deploy.spec import DeploymentSpec
from dockyard.errors import InvalidRequestError

ROUTES = [{"model": "fraud@1.0.0"}]


def test_the_default_wait_bound_is_not_stored() -> None:
    spec = DeploymentSpec.parse({"routes": ROUTES})

    assert spec.batching.max_queue_wait_ms == 1000.0
    assert spec.batching.max_queue_rows == 65_536
    assert "max_queue_wait_ms" not in spec.model_dump(mode="json")["batching"]


def test_a_chosen_wait_bound_round_trips() -> None:
    spec = DeploymentSpec.parse({"routes": ROUTES, "batching": {"max_queue_wait_ms": 250}})
    stored = spec.model_dump(mode="json")

    assert stored["batching"]["max_queue_wait_ms"] == 250.0
    assert DeploymentSpec.parse(stored).batching.max_queue_wait_ms == 250.0


@pytest.mark.parametrize("value", [0, -5, 600_001])
def test_a_wait_bound_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(InvalidRequestError, match="max_queue_wait_ms"):
        DeploymentSpec.parse({"routes": ROUTES, "batching": {"max_queue_wait_ms": value}})
