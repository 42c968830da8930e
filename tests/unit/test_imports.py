"""`import dockyard` and `dockyard --help` stay cheap: no heavy libraries at import."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dockyard

HEAVY = [
    "numpy",
    "pandas",
    "sklearn",
    "sqlalchemy",
    "onnxruntime",
    "xgboost",
    "lightgbm",
    "torch",
    "skops",
    "pyarrow",
    "alembic",
    "prometheus_client",
]


def _imported_after(code: str) -> list[str]:
    probe = (
        f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_dockyard_is_light() -> None:
    assert _imported_after("import dockyard") == []


def test_cli_help_is_light() -> None:
    code = (
        "import sys\nfrom dockyard.cli import app\n"
        "try:\n    app(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert _imported_after(code) == []


def test_models_help_is_light() -> None:
    code = (
        "from dockyard.cli import app\n"
        "try:\n    app(['models', 'register', '--help'], standalone_mode=False)\n"
        "except SystemExit:\n    pass"
    )
    assert _imported_after(code) == []


READ_COMMANDS = [
    ["models", "list"],
    ["models", "show", "clf"],
    ["models", "show", "clf@1.0.0"],
    ["events"],
    ["deployments"],
    ["deployments", "history", "ep"],
    ["tokens", "list"],
]
NOT_FOR_READING = [*HEAVY, "scipy", "duckdb", "fsspec", "onnx", "uvicorn", "fastapi", "httpx"]
NOT_FOR_READING.remove("sqlalchemy")  # the metadata is read through it
NOT_FOR_READING.append("sqlalchemy.dialects.postgresql")  # not for a SQLite registry


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one version of a model and one endpoint serving it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    home = tmp_path_factory.mktemp("home")
    X = np.arange(40, dtype=float).reshape(20, 2)
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, X[:, 0] > 20), "clf", sample=X)
        spec = DeploymentSpec.parse({"routes": [{"model": "clf@1.0.0"}]})
        DeploymentStore(registry.db).put("ep", spec, actor="tester")
    return home


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_import_no_framework(registry_home: Path, command: list[str]) -> None:
    """Reading the registry's metadata needs SQLAlchemy, not numpy, pandas, a model
    framework, the monitoring stack or the artifact store's fsspec."""
    code = (
        f"import os\nos.environ['DOCKYARD_HOME'] = {str(registry_home)!r}\n"
        "from dockyard.cli import app\n"
        f"app({command!r}, standalone_mode=False, prog_name='dockyard')"
    )
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps([m for m in {NOT_FOR_READING!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_public_names_match_all() -> None:
    for name in dockyard.__all__:
        assert getattr(dockyard, name) is not None
    assert set(dockyard.__all__) == set(dir(dockyard))
