"""server/services.py is where every service is built, and every command that reads
monitoring data imports it (through cli/context.py): importing it must load none of the
libraries the services use, which load when a service is built."""

import json
import subprocess
import sys

HEAVY = [
    "numpy",
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "duckdb",
    "prometheus_client",
    "fastapi",
    "starlette",
]


def test_importing_the_service_builders_loads_no_library() -> None:
    probe = (
        "import sys, json\nimport dockyard.cli.context, dockyard.server.services\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
