"""The console's paged reads (``registry/browse.py``) on SQLite and PostgreSQL: search, sort,
pages and counts done in SQL; the latest version by semver (pre-releases below their
release); aliases; events filtered by model, version, endpoint, actor and action; and a
fixed number of queries per page, however many models and versions there are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.errors import ModelNotFoundError
from dockyard.registry import Registry
from dockyard.registry.browse import Catalog
from dockyard.registry.semver import SemVer
from dockyard.registry.types import NewVersion
from dockyard.settings import Settings

NEW = NewVersion(runtime="sklearn", digest="0" * 64, size=1, metrics={"auc": 0.9})


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry.open(settings) as registry:
        yield registry


def _add(registry: Registry, name: str, count: int, actor: str = "tester") -> None:
    for _ in range(count):
        registry.store.add_version(name, NEW, actor=actor)


def test_models_are_searched_sorted_and_paged_in_sql(registry: Registry) -> None:
    _add(registry, "alpha", 3)
    _add(registry, "beta", 1)
    _add(registry, "Gamma-alpha", 2)
    registry.store.add_version("beta", NEW, actor="tester", version=SemVer.parse("2.0.0-rc.1"))
    registry.store.add_version("beta", NEW, actor="tester", version=SemVer.parse("1.5.0"))
    registry.set_alias("alpha@1.0.1", "production")
    catalog = Catalog(registry.db)

    page = catalog.models()
    assert [m.name for m in page.rows] == ["Gamma-alpha", "alpha", "beta"]
    assert page.total == 3
    alpha = page.rows[1]
    assert (alpha.latest, alpha.versions, alpha.aliases) == ("1.0.2", 3, {"production": "1.0.1"})
    assert page.rows[2].latest == "2.0.0-rc.1"  # the highest, pre-release or not, as listed
    assert alpha.last_registered is not None

    found = catalog.models(search="ALPHA")
    assert [m.name for m in found.rows] == ["Gamma-alpha", "alpha"]
    assert catalog.models(search="%").total == 0  # a wildcard is a character here
    by_count = catalog.models(sort="versions", descending=True)
    assert [m.name for m in by_count.rows] == ["alpha", "beta", "Gamma-alpha"]
    newest = catalog.models(sort="registered", descending=True)
    assert newest.rows[0].name == "beta"
    second = catalog.models(offset=1, limit=1)
    assert ([m.name for m in second.rows], second.total, second.has_next) == (["alpha"], 3, True)


def test_versions_page_highest_first_with_aliases(registry: Registry) -> None:
    _add(registry, "many", 30)
    registry.set_alias("many@1.0.5", "staging")
    catalog = Catalog(registry.db)
    first = catalog.versions("many", limit=10)
    assert [v.version for v in first.rows][:2] == ["1.0.29", "1.0.28"]
    assert first.total == 30
    third = catalog.versions("many", offset=20, limit=10)
    assert [v.version for v in third.rows][-1] == "1.0.0"
    assert next(v for v in third.rows if v.version == "1.0.5").aliases == ("staging",)
    with pytest.raises(ModelNotFoundError):
        catalog.versions("nope")


def test_events_filter_by_model_version_endpoint_actor_and_action(registry: Registry) -> None:
    _add(registry, "m", 2, actor="alice")
    store = DeploymentStore(registry.db)
    store.put("ep", DeploymentSpec.parse({"routes": [{"model": "m@1.0.0"}]}), actor="bob")
    store.put("other", DeploymentSpec.parse({"routes": [{"model": "m@1.0.1"}]}), actor="bob")
    catalog = Catalog(registry.db)
    assert {e.actor for e in catalog.events(model="m")} == {"alice"}
    assert [e.version for e in catalog.events(model="m", version="1.0.1")] == ["1.0.1"]
    deployed = catalog.events(endpoint="ep")
    assert [(e.action, e.details["deployment"]) for e in deployed] == [("deployment.update", "ep")]
    assert len(catalog.events(actor="bob")) == 2
    assert len(catalog.events(action="deployment.")) == 2  # a prefix
    assert catalog.events(action="deployment") == []  # an exact action
    newest = catalog.events(limit=1)[0]
    assert all(e.id < newest.id for e in catalog.events(before=newest.id))


def _queries(registry: Registry) -> list[str]:
    seen: list[str] = []
    sa.event.listen(registry.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_page_costs_the_same_queries_however_large_the_registry(
    registry: Registry,
) -> None:
    catalog = Catalog(registry.db)
    _add(registry, "a", 2)
    seen = _queries(registry)
    catalog.models()
    catalog.versions("a")
    few = len(seen)
    for i in range(30):
        _add(registry, f"m{i:02d}", 3)
    _add(registry, "a", 60)
    seen.clear()
    catalog.models()
    catalog.versions("a")
    assert len(seen) == few  # no query per model or per version
