"""``dockyard export`` as a user runs it: a file on disk, a report, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from _cli import run
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    data = load_diabetes(as_frame=True)
    folder = tmp_path_factory.mktemp("export-cli")
    forest = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0)
    with Registry.open(Settings(home=folder, user="t")) as registry:
        registry.register(forest.fit(data.data, data.target), "forest", sample=data.data)
    return folder


def test_export_writes_a_standalone_file_and_its_report(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "forest.onnx"
    report = json.loads(run(home, "export", "forest@1.0.0", "--out", str(target), "--json").stdout)
    assert report["out"] == str(target)
    assert report["size"] == target.stat().st_size
    assert report["task"] == "regression"
    assert report["max_abs_error"] < 1e-3
    props = {p.key: p.value for p in onnx.load(target).metadata_props}
    assert props["dockyard.ref"] == "forest@1.0.0"

    text = run(home, "export", "forest@1.0.0", "--out", str(target), "--quantize", "int8")
    assert "wrote" in text.stdout
    assert "max error" in text.stdout


def test_a_bad_quantization_is_one_line_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "never.onnx"
    done = run(home, "export", "forest@1.0.0", "--out", str(target), "--quantize", "int4", code=2)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: Unknown quantization 'int4'")
    assert not target.exists()
