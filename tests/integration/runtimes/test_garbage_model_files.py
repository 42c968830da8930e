"""A damaged model file of every format is refused with one clear line, never a framework's
stack trace or a crash.

``dockyard models register x bad.json`` printed XGBoost's 11-line C++ stack trace; a
truncated LightGBM text crashed the process (segmentation fault); a bit-flipped ``.ubj`` or
``.pt`` ended in "internal error". Each runtime (scikit-learn/skops, XGBoost, LightGBM,
ONNX, TorchScript, MLflow directories of each flavour) gets valid files cut short, with
bytes overwritten, and with the right name but the wrong content: registering any of them
is a 400-class Dockyard error whose message is one line without stack frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dockyard.errors import DockyardError
from dockyard.registry import Registry
from dockyard.settings import Settings


def _cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


def _flip(data: bytes, share: float) -> bytes:
    spoiled = bytearray(data)
    start = int(len(data) * share)
    for i in range(start, min(start + 40, len(data))):
        spoiled[i] = (spoiled[i] * 7 + 13) % 256
    return bytes(spoiled)


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "cut-early": lambda d: _cut(d, 0.3),
    "cut-half": lambda d: _cut(d, 0.5),
    "cut-late": lambda d: _cut(d, 0.9),
    "flipped-early": lambda d: _flip(d, 0.1),
    "flipped-middle": lambda d: _flip(d, 0.4),
    "flipped-late": lambda d: _flip(d, 0.8),
    "noise": lambda d: bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)),
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid model files, one per format (the suffix is the key)."""
    import lightgbm
    import skops.io
    import torch
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("originals")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    booster = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    booster.save_model(folder / "model.json")
    booster.save_model(folder / "model.ubj")
    trees = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    trees.booster_.save_model(folder / "model.txt")
    linear = LogisticRegression().fit(X, y)
    skops.io.dump(linear, folder / "model.skops")
    (folder / "model.onnx").write_bytes(to_onnx(linear, X[:1]).SerializeToString())

    class Sum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1)

    torch.jit.script(Sum()).save(str(folder / "model.pt"))
    return {path.suffix: path.read_bytes() for path in folder.iterdir()}


def _one_line(exc: DockyardError) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert len(text) < 800, text
    for frame in ("Stack trace", "Traceback", "0x7f", "libxgboost", "(0) /"):
        assert frame not in text, text


def _refused(home: Path, path: Path) -> DockyardError:
    with Registry.open(Settings(home=home, user="tester")) as registry:
        with pytest.raises(DockyardError) as caught:
            registry.register(path, "x")
        assert registry.list_models() == []
    _one_line(caught.value)
    assert caught.value.exit_code == 2, (path, caught.value)  # the user's file, not a bug
    return caught.value


@pytest.mark.parametrize("suffix", [".json", ".ubj", ".skops", ".onnx", ".pt"])
def test_a_damaged_file_of_each_format_is_refused_in_one_line(
    suffix: str, originals: dict[str, bytes], tmp_path: Path
) -> None:
    for damage, spoil in DAMAGES.items():
        path = tmp_path / f"{damage}{suffix}"
        path.write_bytes(spoil(originals[suffix]))
        _refused(tmp_path / "home", path)


def test_an_xgboost_json_with_a_nonsense_booster_is_refused_in_one_line(
    originals: dict[str, bytes], tmp_path: Path
) -> None:
    document = json.loads(originals[".json"])
    document["learner"]["gradient_booster"] = "nonsense"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    error = _refused(tmp_path / "home", path)
    assert "XGBoost" in error.message


def _mlflow(root: Path, flavour: str, spec: dict[str, Any], files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    flavours = {"python_function": {"loader_module": f"mlflow.{flavour}"}, flavour: spec}
    (root / "MLmodel").write_text(yaml.safe_dump({"flavors": flavours}))
    return root


def test_mlflow_directories_with_damaged_models_are_refused_in_one_line(
    originals: dict[str, bytes], tmp_path: Path
) -> None:
    cases = [
        ("onnx", {"data": "model.onnx"}, "model.onnx", originals[".onnx"]),
        ("xgboost", {"data": "model.ubj"}, "model.ubj", originals[".ubj"]),
        (
            "sklearn",
            {"pickled_model": "model.skops", "serialization_format": "skops"},
            "model.skops",
            originals[".skops"],
        ),
    ]
    for flavour, spec, name, data in cases:
        for damage in ("cut-half", "flipped-middle", "noise"):
            root = _mlflow(tmp_path / f"{flavour}-{damage}", flavour, spec, {name: data})
            (root / name).write_bytes(DAMAGES[damage](data))
            _refused(tmp_path / "home", root)
    broken = tmp_path / "broken-yaml"
    broken.mkdir()
    (broken / "MLmodel").write_text(": : :\n  - [\n")
    _refused(tmp_path / "home", broken)


def test_a_cut_lightgbm_text_is_refused_in_one_line_not_a_crash(
    originals: dict[str, bytes], tmp_path: Path
) -> None:
    """Cut at many points (in the header, a tree, the parameters), through the CLI in a
    subprocess: before the fix LightGBM crashed the whole process at most of them."""
    text = originals[".txt"]
    folder = tmp_path / "cuts"
    folder.mkdir()
    cuts = sorted({int(len(text) * share) for share in np.linspace(0.05, 0.97, 24)})
    for cut in cuts:
        (folder / f"cut-{cut}.txt").write_bytes(text[:cut])
    (folder / "flipped.txt").write_bytes(_flip(text, 0.5))
    mlflow = _mlflow(
        tmp_path / "mlflow-lightgbm",
        "lightgbm",
        {"data": "model.lgb", "model_class": "lightgbm.basic.Booster"},
        {"model.lgb": text[: len(text) // 2]},
    )
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from dockyard.errors import DockyardError\n"
        "from dockyard.registry import Registry\n"
        "from dockyard.settings import Settings\n"
        "with Registry.open(Settings(home=Path(sys.argv[1]), user='t')) as registry:\n"
        "    for path in sys.argv[2:]:\n"
        "        try:\n"
        "            registry.register(Path(path), 'x')\n"
        "            print('ACCEPTED', path)\n"
        "        except DockyardError as exc:\n"
        "            print(exc.exit_code, str(exc).replace(chr(10), '<NL>'))\n"
    )
    paths = [*sorted(map(str, folder.iterdir())), str(mlflow)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home"), *paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert len(lines) == len(paths), result.stdout
    for line in lines:
        assert line.startswith("2 "), line
        assert "<NL>" not in line, line
