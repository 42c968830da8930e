"""An image's pins: the closure of Dockyard's requirements on this machine, recorded
versions first, only the extras asked for."""

from __future__ import annotations

import importlib.metadata as metadata

from dockyard.ship.requirements import extras_for, pinned


def test_only_the_runtimes_extras_are_pulled_in() -> None:
    assert extras_for({"sklearn", "onnx"}) == set()
    assert extras_for({"lightgbm", "sklearn"}) == {"lightgbm"}
    assert extras_for({"torch"}, postgres=True, s3=True) == {"torch", "postgres", "s3"}
    core = {pin.name for pin in pinned(set(), {})}
    assert {"numpy", "scikit-learn", "onnxruntime", "uvicorn", "uvloop"} <= core
    assert {"torch", "lightgbm", "xgboost", "psycopg", "s3fs", "dockyard", "pip"}.isdisjoint(core)
    boosted = {pin.name for pin in pinned({"lightgbm"}, {})}
    assert boosted - core >= {"lightgbm"}
    assert "torch" not in boosted


def test_recorded_versions_win_and_the_rest_is_what_is_installed() -> None:
    pins = {pin.name: pin for pin in pinned(set(), {"scikit-learn": "1.4.2", "python": "3.11.7"})}
    assert pins["scikit-learn"].line() == "scikit-learn==1.4.2"
    assert pins["scikit-learn"].source == "recorded"
    assert pins["numpy"].version == metadata.version("numpy")
    assert pins["numpy"].source == "installed"
    assert "python" not in pins
