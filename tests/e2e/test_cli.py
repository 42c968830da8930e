"""The ``dockyard`` command, run as a user runs it: a real process, real files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from _cli import CLI


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A skops model, its training sample as Parquet (with the label column), and a pickle."""
    import skops.io
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("files")
    data = load_breast_cancer(as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(data.data, data.target)
    skops.io.dump(model, folder / "model.skops")
    frame = data.data.copy()
    frame["label"] = data.target
    frame.to_parquet(folder / "train.parquet")
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    (folder / "garbage.onnx").write_bytes(b"\x00not a model at all")
    return {
        "model": folder / "model.skops",
        "sample": folder / "train.parquet",
        "pickle": folder / "model.pkl",
        "garbage": folder / "garbage.onnx",
    }


def test_register_list_show_alias_tag_archive_events(cli: CLI, files: dict[str, Path]) -> None:
    out = cli(
        "models",
        "register",
        "cancer",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--target",
        "label",
        "--metric",
        "auc=0.99",
        "--alias",
        "staging",
    ).stdout
    assert "Registered cancer@1.0.0" in out
    second = cli.json(
        "models",
        "register",
        "cancer",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--target",
        "label",
        "--bump",
        "minor",
    )
    assert second["version"] == "1.1.0"

    listed = cli.json("models", "list")
    assert [(m["name"], m["latest"], m["versions"]) for m in listed] == [("cancer", "1.1.0", 2)]
    table = cli("models", "list").stdout
    assert "cancer" in table
    assert "staging→1.0.0" in table

    cli("models", "alias", "cancer@1.1.0", "champion")  # unprotected: moves on request
    shown = cli.json("models", "show", "cancer@champion")
    assert shown["version"] == "1.1.0"
    assert shown["signature"]["output"]["classes"] == [0, 1]
    assert "label" not in [c["name"] for c in shown["signature"]["columns"]]
    assert shown["metrics"] == {}
    human = cli("models", "show", "cancer@1.0.0").stdout
    for expected in ("mean radius", "auc=0.99", "sha256:"):
        assert expected in human

    cli("models", "tag", "cancer@1.0.0", "owner=ana")
    assert cli.json("models", "show", "cancer@1.0.0")["tags"] == {"owner": "ana"}
    cli("models", "alias", "cancer", "staging", "--delete")
    assert cli.json("models", "archive", "cancer@1.0.0")["status"] == "archived"

    events = cli.json("events", "--model", "cancer")
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "model.create",
        "version.register",
        "alias.set",
        "version.register",
        "alias.set",
        "tags.update",
        "alias.delete",
        "version.archive",
    ]
    assert {e["actor"] for e in events} == {"cli-user"}
    assert "version.archive" in cli("events").stdout


def test_failures_print_one_line_exit_non_zero_and_change_nothing(
    cli: CLI, files: dict[str, Path]
) -> None:
    cli(
        "models",
        "register",
        "cancer",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--target",
        "label",
        "--version",
        "1.0.0",
        "--alias",
        "staging",
    )
    before = cli.json("events")

    assert "ghost" in cli.fails("models", "show", "ghost", code=4)
    assert "9.9.9" in cli.fails("models", "show", "cancer@9.9.9", code=4)
    assert "not a semantic version" in cli.fails(
        "models", "register", "cancer", str(files["model"]), "--version", "1.0", code=2
    )
    assert "immutable" in cli.fails(
        "models", "register", "cancer", str(files["model"]), "--version", "1.0.0", code=5
    )
    line = cli.fails("models", "register", "cancer", str(files["pickle"]), code=2)
    assert "--trusted" in line
    assert "does not exist" in cli.fails(
        "models", "register", "cancer", "/nowhere/model.onnx", code=2
    )
    cli.fails("models", "register", "cancer", str(files["garbage"]), code=2)
    assert "aliased" in cli.fails("models", "archive", "cancer@1.0.0", code=5)
    assert "key=value" in cli.fails(
        "models", "register", "cancer", str(files["model"]), "--metric", "auc", code=2
    )
    assert "target" in cli.fails(
        "models",
        "register",
        "cancer",
        str(files["model"]),
        "--sample",
        str(files["sample"]),
        "--target",
        "nope",
        code=2,
    )

    assert cli.json("events") == before
    assert [v["version"] for v in cli.json("models", "show", "cancer")["versions"]] == ["1.0.0"]


def test_trusted_pickle_is_recorded(cli: CLI, files: dict[str, Path]) -> None:
    cli("models", "register", "cancer", str(files["pickle"]), "--trusted")
    event = cli.json("events", "--action", "version.register")[0]
    assert event["details"]["trusted"] is True


def test_verify_detects_a_corrupted_artifact(
    cli: CLI, files: dict[str, Path], tmp_path: Path
) -> None:
    version = cli.json("models", "register", "cancer", str(files["model"]))
    assert cli.json("models", "verify", "cancer@1.0.0")["verified"] is True
    blob = tmp_path / "home" / "artifacts" / "sha256" / version["digest"][:2] / version["digest"]
    blob.write_bytes(blob.read_bytes()[:-10])
    assert "corrupted" in cli.fails("models", "verify", "cancer@1.0.0", code=6)


def test_onnx_file_with_a_parquet_sample(cli: CLI, tmp_path: Path) -> None:
    """The issue's own example: dockyard models register fraud model.onnx --sample ..."""
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(100, 3)).astype(np.float32), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    model = LogisticRegression().fit(X.to_numpy(), y)
    (tmp_path / "model.onnx").write_bytes(
        to_onnx(model, X.to_numpy()[:1], options={"zipmap": False}).SerializeToString()
    )
    X.assign(label=y).to_parquet(tmp_path / "train.parquet")
    registered = cli.json(
        "models",
        "register",
        "fraud",
        str(tmp_path / "model.onnx"),
        "--sample",
        str(tmp_path / "train.parquet"),
        "--target",
        "label",
    )
    assert registered["runtime"] == "onnx"
    assert [c["name"] for c in registered["signature"]["columns"]] == ["a", "b", "c"]
    assert registered["signature"]["output"]["classes"] == [0, 1]


def test_version_and_help(cli: CLI) -> None:
    assert cli("--version").stdout.startswith("dockyard ")
    assert "register" in cli("models", "--help").stdout
    cli("models", "nope", code=2)
