"""The registry end to end through its Python API, on SQLite and on PostgreSQL, with a real
artifact folder and real fitted models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from dockyard.errors import (
    AliasNotFoundError,
    ArtifactIntegrityError,
    InvalidNameError,
    InvalidRequestError,
    InvalidVersionError,
    ModelNotFoundError,
    VersionAliasedError,
    VersionArchivedError,
    VersionExistsError,
    VersionNotFoundError,
)
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture
def registry(settings: Settings) -> Any:
    with Registry.open(settings) as opened:
        yield opened


def test_registered_model_predicts_exactly_like_the_original(
    registry: Registry, cancer: Any
) -> None:
    model, X, y = cancer
    version = registry.register(model, "cancer", sample=X, y=y, metrics={"auc": 0.99})
    assert version.version == "1.0.0"
    loaded = registry.load("cancer@1.0.0")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    records = X.head(3).to_dict(orient="records")
    np.testing.assert_array_equal(loaded.predict(records), model.predict(X.head(3)))


def test_version_records_signature_profile_lineage_and_environment(
    registry: Registry, cancer: Any
) -> None:
    model, X, y = cancer
    version = registry.register(
        model,
        "cancer",
        sample=X,
        y=y,
        params={"C": 1.0},
        tags={"team": "risk"},
        description="baseline",
        code_revision="abc123",
    )
    assert version.signature is not None
    columns = version.signature["columns"]
    assert [c["name"] for c in columns] == list(X.columns)
    assert version.signature["output"]["kind"] == "classification"
    assert version.signature["output"]["classes"] == [0, 1]
    assert version.lineage["data"]["rows"] == len(X)
    assert len(version.lineage["data"]["sha256"]) == 64
    assert version.lineage["registered_by"] == "tester"
    assert version.lineage["code_revision"] == "abc123"
    assert "scikit-learn" in version.environment
    assert version.params == {"C": 1.0}
    assert version.tags == {"team": "risk"}
    profile = registry.get_profile("cancer@1.0.0")
    assert profile is not None
    assert "mean radius" in profile["features"]


def test_bump_and_explicit_versions(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    assert registry.register(model, "m", sample=X).version == "1.0.0"
    assert registry.register(model, "m", sample=X, bump="minor").version == "1.1.0"
    assert registry.register(model, "m", sample=X, version="3.0.0").version == "3.0.0"
    assert registry.register(model, "m", sample=X, bump="patch").version == "3.0.1"
    assert registry.register(model, "m", sample=X, bump="major").version == "4.0.0"
    assert registry.get_model("m").latest == "4.0.0"


def test_duplicate_or_malformed_versions_change_nothing(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X, version="1.4.0")
    events_before = len(registry.events(limit=1000))
    with pytest.raises(VersionExistsError, match="immutable"):
        registry.register(model, "m", sample=X, version="1.4.0")
    with pytest.raises(InvalidVersionError):
        registry.register(model, "m", sample=X, version="1.4")
    with pytest.raises(InvalidRequestError, match="Unknown bump"):
        registry.register(model, "m", sample=X, bump="huge")  # type: ignore[arg-type]
    assert [v.version for v in registry.list_versions("m")] == ["1.4.0"]
    assert len(registry.events(limit=1000)) == events_before


def test_aliases_move_and_resolve(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X)
    registry.register(model, "m", sample=X, aliases=["staging"])
    registry.set_alias("m@1.0.0", "production")
    assert registry.get_version("m@production").version == "1.0.0"
    assert registry.get_version("m@staging").version == "1.0.1"
    assert registry.load("m@production").version.version == "1.0.0"
    registry.set_alias("m@staging", "production")
    assert registry.get_version("m@production").version == "1.0.1"
    assert registry.get_model("m").aliases == {"production": "1.0.1", "staging": "1.0.1"}
    moves = registry.events(model="m", action="alias.set")
    assert moves[0].before == {"alias": "production", "version": "1.0.0"}
    assert moves[0].after == {"alias": "production", "version": "1.0.1"}
    registry.delete_alias("m", "staging")
    with pytest.raises(AliasNotFoundError, match="staging"):
        registry.get_version("m@staging")
    with pytest.raises(InvalidNameError, match="reserved"):
        registry.set_alias("m@1.0.0", "latest")


def test_archive_rules(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X, aliases=["production"])
    registry.register(model, "m", sample=X)
    with pytest.raises(VersionAliasedError, match="production"):
        registry.archive("m@1.0.0")
    archived = registry.archive("m@1.0.1")
    assert archived.status == "archived"
    assert registry.get_version("m").version == "1.0.0"  # latest skips archived
    assert registry.get_version("m@latest").version == "1.0.0"
    with pytest.raises(VersionArchivedError):
        registry.set_alias("m@1.0.1", "staging")
    # numbers are never reused, even for archived versions
    assert registry.register(model, "m", sample=X).version == "1.0.2"
    assert registry.restore("m@1.0.1").status == "active"
    with pytest.raises(InvalidRequestError, match="names a model"):
        registry.archive("m")


def test_tags_on_models_and_versions(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X)
    assert registry.set_tags("m", {"owner": "ana"}) == {"owner": "ana"}
    assert registry.set_tags("m@1.0.0", {"dataset": "v2", "x": "1"}) == {"dataset": "v2", "x": "1"}
    assert registry.set_tags("m@1.0.0", remove=["x"]) == {"dataset": "v2"}
    with pytest.raises(InvalidRequestError, match="no tag"):
        registry.set_tags("m@1.0.0", remove=["nope"])
    assert registry.get_model("m").tags == {"owner": "ana"}
    assert registry.get_version("m@1.0.0").tags == {"dataset": "v2"}
    update = registry.events(model="m", action="tags.update")[0]
    assert update.before == {"dataset": "v2", "x": "1"}
    assert update.after == {"dataset": "v2"}


def test_not_found_errors_say_what_to_do(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    with pytest.raises(ModelNotFoundError, match="dockyard models list"):
        registry.get_version("ghost@1.0.0")
    registry.register(model, "m", sample=X)
    with pytest.raises(VersionNotFoundError, match=r"dockyard models show m"):
        registry.get_version("m@9.9.9")
    with pytest.raises(AliasNotFoundError, match="models alias"):
        registry.load("m@production")


def test_every_mutation_is_in_the_event_log(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X)
    registry.set_alias("m@1.0.0", "production")
    registry.set_tags("m@1.0.0", {"a": "b"})
    registry.set_description("m", "cancer screening")
    registry.register(model, "m", sample=X)
    registry.archive("m@1.0.1")
    actions = [e.action for e in reversed(registry.events(model="m"))]
    assert actions == [
        "model.create",
        "version.register",
        "alias.set",
        "tags.update",
        "description.update",
        "version.register",
        "version.archive",
    ]
    registered = registry.events(model="m", action="version.register")[-1]
    assert registered.actor == "tester"
    assert registered.after["runtime"] == "sklearn"
    assert registered.details["trusted"] is False


def test_event_log_is_append_only_in_the_database(registry: Registry, cancer: Any) -> None:
    model, X, _ = cancer
    registry.register(model, "m", sample=X)
    for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), registry.db.write() as conn:
            conn.execute(sa.text(statement))
    assert {e.actor for e in registry.events()} == {"tester"}


def test_corrupted_artifact_is_never_loaded(
    registry: Registry, settings: Settings, cancer: Any
) -> None:
    model, X, _ = cancer
    version = registry.register(model, "m", sample=X)
    path = Path(registry.artifacts.path(version.digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="corrupted"):
        registry.load("m@1.0.0")
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registry.load("m@1.0.0")


def test_identical_artifacts_are_stored_once(
    registry: Registry, cancer: Any, tmp_path: Path
) -> None:
    import skops.io

    model, X, _ = cancer
    skops.io.dump(model, tmp_path / "model.skops")
    first = registry.register(tmp_path / "model.skops", "a", sample=X, accelerate=False)
    second = registry.register(tmp_path / "model.skops", "b", sample=X, accelerate=False)
    assert first.digest == second.digest
    blobs = [p for p in Path(registry.artifacts.root, "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_lightgbm_with_categoricals_and_missing_values(registry: Registry, penguins: Any) -> None:
    model, X, y = penguins
    registry.register(model, "penguins", sample=X, y=y, aliases=["production"])
    loaded = registry.load("penguins@production")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    columns = {c["name"]: c for c in loaded.version.signature["columns"]}  # type: ignore[index]
    assert columns["island"]["dtype"] == "category"
    assert set(columns["island"]["categories"]) == {"Biscoe", "Dream", "Torgersen"}
    assert columns["bill_length_mm"]["nullable"] is True
    assert loaded.version.signature["output"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]  # type: ignore[index]


def test_unreachable_or_malformed_databases_are_storage_errors(tmp_path: Path) -> None:
    from dockyard.errors import StorageError

    for url in ("postgresql+psycopg://nobody@127.0.0.1:1/none", "not a url", "mysql://x/y"):
        settings = Settings(home=tmp_path, database_url=url)
        with pytest.raises(StorageError) as info:
            Registry.open(settings).close()
        assert info.value.hint
