"""Stored deployment specs are read tolerantly (a newer Dockyard may have written keys this
one does not know); what users send stays strict."""

from __future__ import annotations

import pytest

from dockyard.deploy.spec import DeploymentSpec, read_stored
from dockyard.errors import InvalidRequestError, UnreadableSpecError

ROUTES = [{"model": "fraud@1.0.0", "weight": 100}]


def test_a_spec_this_version_wrote_reads_whole() -> None:
    stored = DeploymentSpec.parse({"routes": ROUTES}).model_dump(mode="json")

    spec, ignored = read_stored(stored)

    assert ignored == ()
    assert spec == DeploymentSpec.parse(stored)


def test_unknown_keys_at_any_depth_are_left_out_and_named() -> None:
    stored = {
        "routes": [{"model": "fraud@1.0.0", "weight": 100, "zone": "eu"}],
        "batching": {"max_batch_size": 8, "queue_policy": "fifo"},
        "monitoring": {"alerts": [{"name": "a", "metric": "error_rate", "threshold": 0.1, "x": 1}]},
        "autoscale": {"min": 1},
    }

    spec, ignored = read_stored(stored)

    assert sorted(ignored) == [
        "autoscale",
        "batching.queue_policy",
        "monitoring.alerts.0.x",
        "routes.0.zone",
    ]
    assert spec.batching.max_batch_size == 8
    assert spec.monitoring.alerts[0].name == "a"
    assert "autoscale" in stored  # the stored data itself is left as it was


def test_a_value_this_version_refuses_is_unreadable_with_every_problem() -> None:
    stored = {"routes": ROUTES, "batching": {"max_batch_size": 0, "queue_policy": "fifo"}}

    with pytest.raises(UnreadableSpecError) as caught:
        read_stored(stored)

    assert caught.value.status == 409
    assert caught.value.details["problems"] == [
        "batching.max_batch_size: Input should be greater than or equal to 1"
    ]
    assert caught.value.details["unknown_keys"] == ["batching.queue_policy"]


def test_a_users_spec_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"batching\.max_batch_sise"):
        DeploymentSpec.parse({"routes": ROUTES, "batching": {"max_batch_sise": 8}})
