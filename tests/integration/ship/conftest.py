"""A registry with one endpoint deployed (the breast-cancer pipeline), for the generators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture
def deployed(tmp_path: Path, cancer: tuple[Any, Any, Any]) -> Settings:
    from dockyard.deploy.service import Deployments, single_route

    model, X, y = cancer
    settings = Settings(home=tmp_path / "home", user="tester")
    with Registry.open(settings) as registry:
        registry.register(model, "cancer", sample=X, y=y, aliases=["production"])
        Deployments(registry).deploy(
            "cancer", single_route("cancer@production"), actor="tester", reason="first"
        )
    return settings
