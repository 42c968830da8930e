"""Choosing runtimes: composition, plug-in discovery, files, pickles and cheap imports."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import dockyard.runtimes
from dockyard.errors import UnreadableFileError, UnsupportedModelError, UntrustedModelError
from dockyard.runtimes import Artifact, LoadedModel, Runtime, Runtimes
from dockyard.runtimes.pickle import PickleRuntime

HEAVY = (
    "numpy",
    "pandas",
    "sklearn",
    "scipy",
    "skops",
    "xgboost",
    "lightgbm",
    "onnxruntime",
    "torch",
    "yaml",
)


class Constant:
    """A model kind no built-in runtime knows."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, x: Any) -> Any:
        return np.full(len(x), self.value)


class ConstantRuntime:
    """A hand-written runtime, stored as JSON: what a third-party plug-in looks like."""

    name = "constant"

    def handles(self, obj: object) -> bool:
        return isinstance(obj, Constant)

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        assert isinstance(obj, Constant)
        return Artifact(self.name, json.dumps({"value": obj.value}).encode(), ".json")

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".constant"

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        return self.dump(Constant(float(path.read_text())))

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        return PickleRuntime().load(
            pickle.dumps(Constant(json.loads(data)["value"])), {}, trusted=True
        )

    def environment(self) -> dict[str, str]:
        return {"python": sys.version.split()[0]}


def test_importing_and_discovering_runtimes_imports_no_framework() -> None:
    code = (
        "import sys; from dockyard.runtimes import Runtimes; "
        "assert not any(runtime.handles(object()) for runtime in Runtimes.discover()); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_all_names_what_the_package_exports() -> None:
    assert sorted(dockyard.runtimes.__all__) == [
        "Artifact",
        "LoadedModel",
        "Runtime",
        "Runtimes",
    ]
    for name in dockyard.runtimes.__all__:
        assert hasattr(dockyard.runtimes, name)


def test_discover_finds_every_builtin(runtimes: Runtimes) -> None:
    assert runtimes.names == (
        "xgboost",
        "lightgbm",
        "sklearn",
        "onnx",
        "torch",
        "mlflow",
        "pickle",
    )
    for runtime in runtimes:
        assert isinstance(runtime, Runtime)
        environment = runtime.environment()
        assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "scikit-learn" in runtimes.get("sklearn").environment()
    assert "onnxruntime" in runtimes.get("onnx").environment()


def test_discover_loads_entry_point_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dockyard_constant_plugin.py").write_text(
        textwrap.dedent(
            """
            class ConstantRuntime:
                name = "constant"
                def handles(self, obj): return False
                def dump(self, obj, *, trusted=False): raise NotImplementedError
                def recognises(self, path): return False
                def read(self, path, *, trusted=False): raise NotImplementedError
                def load(self, data, options, *, trusted=False): raise NotImplementedError
                def environment(self): return {}
            """
        )
    )
    info = tmp_path / "dockyard_constant_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dockyard-constant-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[dockyard.runtimes]\nconstant = dockyard_constant_plugin:ConstantRuntime\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    names = Runtimes.discover().names

    assert names[-2:] == ("constant", "pickle")
    assert Runtimes.discover().get("constant").__class__.__name__ == "ConstantRuntime"


def test_composed_runtimes_dispatch_objects_and_files(tmp_path: Path) -> None:
    composed = Runtimes([ConstantRuntime(), *Runtimes.discover()])
    artifact = composed.artifact_from_object(Constant(2.5))
    model = composed.get(artifact.runtime).load(artifact.data, artifact.options)
    np.testing.assert_array_equal(model.predict([[1], [2]]), [2.5, 2.5])

    file = tmp_path / "seven.constant"
    file.write_text("7")
    assert composed.artifact_from_path(file).data == b'{"value": 7.0}'
    with pytest.raises(UntrustedModelError, match=r"Constant.*trusted=True"):
        Runtimes.discover().artifact_from_object(Constant(1.0))


def test_names_must_be_unique_and_unknown_names_are_explained() -> None:
    with pytest.raises(ValueError, match="constant"):
        Runtimes([ConstantRuntime(), ConstantRuntime()])
    with pytest.raises(UnsupportedModelError) as unknown:
        Runtimes([ConstantRuntime()]).get("sklearn")
    assert "constant" in str(unknown.value.hint)


def test_unsupported_object_lists_what_is_supported(runtimes: Runtimes) -> None:
    with pytest.raises(UnsupportedModelError) as refused:
        runtimes.artifact_from_object({"weights": [1, 2]})
    assert "builtins.dict" in refused.value.message
    assert ".skops" in str(refused.value.hint)
    assert "ONNX" in str(refused.value.hint)


def test_trusted_object_with_predict_falls_back_to_pickle(runtimes: Runtimes) -> None:
    with pytest.raises(UntrustedModelError):
        runtimes.artifact_from_object(Constant(3.0))
    artifact = runtimes.artifact_from_object(Constant(3.0), trusted=True)
    assert (artifact.runtime, artifact.trusted_types) == ("pickle", ("pickle",))
    with pytest.raises(UntrustedModelError):
        runtimes.get("pickle").load(artifact.data, artifact.options)
    model = runtimes.get("pickle").load(artifact.data, artifact.options, trusted=True)
    np.testing.assert_array_equal(model.predict([[0]]), [3.0])
    assert model.metadata()["estimator"].endswith("Constant")


def test_missing_garbage_and_unknown_paths_are_refused(runtimes: Runtimes, tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError):
        runtimes.artifact_from_path(tmp_path / "nowhere.onnx")
    garbage = tmp_path / "model.bin"
    garbage.write_bytes(b"\x00\x01garbage\xff" * 10)
    with pytest.raises(UnsupportedModelError):
        runtimes.artifact_from_path(garbage)
    with pytest.raises(UnsupportedModelError):
        runtimes.artifact_from_path(tmp_path)  # a directory without an MLmodel file


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "model.bin"])
def test_pickles_are_refused_unless_trusted_then_stored_safely(
    runtimes: Runtimes,
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    tmp_path: Path,
    name: str,
) -> None:
    x, y = numbers
    classifier = LogisticRegression().fit(x, y > 0)
    file = tmp_path / name
    if name.endswith(".joblib"):
        joblib.dump(classifier, file)
    else:
        file.write_bytes(pickle.dumps(classifier, protocol=4))

    with pytest.raises(UntrustedModelError) as refused:
        runtimes.artifact_from_path(file)
    assert "trusted=True" in str(refused.value)

    artifact = runtimes.artifact_from_path(file, trusted=True)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)
    assert (artifact.runtime, artifact.trusted_types) == ("sklearn", ("pickle",))
    np.testing.assert_array_equal(model.predict_proba(x), classifier.predict_proba(x))


def test_trusted_pickle_of_unknown_model_is_kept_as_pickle(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    file = tmp_path / "constant.pkl"
    file.write_bytes(pickle.dumps(Constant(4.0)))
    artifact = runtimes.artifact_from_path(file, trusted=True)
    assert (artifact.runtime, artifact.trusted_types) == ("pickle", ("pickle",))

    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(UnreadableFileError):
        runtimes.artifact_from_path(junk, trusted=True)
