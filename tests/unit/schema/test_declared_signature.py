"""MLflow's declared column types, mapped to Dockyard's (pure)."""

from __future__ import annotations

from dockyard.schema.declared import signature_from_mlflow


def test_every_mlflow_column_type_maps_and_optional_columns_are_nullable() -> None:
    inputs = [
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "l", "type": "long", "required": False},
        {"name": "i", "type": "integer"},
        {"name": "b", "type": "boolean", "required": False},
        {"name": "s", "type": "string"},
        {"name": "t", "type": "datetime"},
    ]
    signature = signature_from_mlflow(
        inputs, [{"type": "double"}], layout="frame", classes=None, has_proba=False
    )
    assert signature is not None
    assert [(c.name, c.dtype, c.pandas_dtype, c.nullable) for c in signature.columns] == [
        ("d", "float", "float64", False),
        ("f", "float", "float32", False),
        ("l", "integer", "Int64", True),
        ("i", "integer", "int32", False),
        ("b", "boolean", "boolean", True),
        ("s", "string", "object", False),
        ("t", "datetime", "datetime64[ns]", False),
    ]
    assert signature.column("s").unseen == "allow"  # free text, no categories known
    assert signature.output.kind == "regression"


def test_an_unmapped_type_gives_no_signature() -> None:
    inputs = [{"name": "x", "type": "double"}, {"name": "blob", "type": "binary"}]
    assert signature_from_mlflow(inputs, [], layout="frame", classes=None, has_proba=False) is None
