"""`import dockyard` and `dockyard --help` stay cheap: no heavy libraries at import."""

import json
import subprocess
import sys

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


def test_public_names_match_all() -> None:
    for name in dockyard.__all__:
        assert getattr(dockyard, name) is not None
    assert set(dockyard.__all__) == set(dir(dockyard))
