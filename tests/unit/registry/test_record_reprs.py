"""A registry record shows as one short line in a notebook, however much it carries."""

from __future__ import annotations

from datetime import UTC, datetime

from dockyard.registry.types import Event, Model, Version

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_version_repr_is_one_short_line_without_signature_or_lineage() -> None:
    columns = [{"name": f"feature_{i}", "dtype": "float", "minimum": 0.0} for i in range(300)]
    version = Version(
        model="fraud",
        version="1.4.0",
        runtime="sklearn",
        digest="ab" * 32,
        size=8_912_345,
        status="active",
        created_at=AT,
        created_by="ana",
        signature={"columns": columns, "layout": "frame"},
        lineage={"data": {"columns": [c["name"] for c in columns]}},
        environment={f"package_{i}": "1.0" for i in range(100)},
        aliases=("production",),
    )
    text = repr(version)
    assert text == (
        "Version('fraud@1.4.0', runtime='sklearn', status='active', aliases=['production'], "
        "sha256='abababababab', size=8912345)"
    )
    assert len(repr([version] * 3)) < 400


def test_model_and_event_reprs_are_short() -> None:
    model = Model("fraud", "x" * 5000, AT, "ana", aliases={"production": "1.4.0"}, versions=7)
    assert repr(model) == (
        "Model('fraud', latest=None, versions=7, aliases={'production': '1.4.0'})"
    )
    event = Event(1, AT, "ana", "alias.set", "fraud", "1.4.0", after={"big": "y" * 5000})
    assert repr(event) == (
        "Event(1, 'alias.set', 'fraud@1.4.0', actor='ana', at='2026-11-21T12:00:00+00:00')"
    )
