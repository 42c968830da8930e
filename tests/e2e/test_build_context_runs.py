"""The proof that ``dockyard build``'s context is right, on a machine with no image
registry: a fresh virtualenv gets the context's requirements file alone (pip, with this
machine's package index), then the Dockerfile's own entrypoint and command run with its
environment, from the context's files only, and answer correct predictions with the token
the build printed.

What differs from the image, and nothing else: the image's root (``/opt/dockyard``) is the
context folder, the venv is made here rather than in the build stage, the writable home
is a temporary folder, and the server binds loopback on a free port instead of 0.0.0.0:8000.
Installing ~65 pinned packages makes this the suite's slowest test (a minute or two from a
local index); it stays in CI because nothing else proves the pins install and run.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _server import free_port
from dockyard.registry import Registry
from dockyard.settings import Settings


def _dockerfile(path: Path) -> tuple[dict[str, str], list[str]]:
    """The runtime stage's ENV, and ENTRYPOINT + CMD (exec form)."""
    env: dict[str, str] = {}
    command: list[str] = []
    for line in path.read_text().splitlines():
        op, _, arg = line.partition(" ")
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arg))
        elif op in ("ENTRYPOINT", "CMD"):
            command += json.loads(arg)
    return env, command


@pytest.mark.timeout(1500)
def test_the_context_installs_and_serves_from_its_own_files(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from dockyard.deploy.service import Deployments, single_route

    data = load_breast_cancer(as_frame=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(data.data, data.target)
    home = tmp_path / "registry"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "forest", sample=data.data, y=data.target, aliases=["production"])
        Deployments(registry).deploy("forest", single_route("forest@production"), actor="tester")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "PYTHONPATH"))}
    context = tmp_path / "context"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "--home",
            str(home),
            "build",
            "forest",
            "--out",
            str(context),
            "--json",
        ],
        env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    token = json.loads(built.stdout)["token"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(context / "requirements.txt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    image_env, command = _dockerfile(context / "Dockerfile")
    run_env = {
        key: value.replace("/opt/dockyard", str(context)) for key, value in image_env.items()
    }
    run_env.update(
        PATH=f"{venv / 'bin'}:/usr/bin:/bin",
        DOCKYARD_HOME=str(tmp_path / "volume"),
        HOME=str(tmp_path),
    )
    where = subprocess.run(
        ["python", "-c", "import dockyard, sklearn; print(dockyard.__file__, sklearn.__file__)"],
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert where[0] == str(context / "lib" / "dockyard" / "__init__.py")  # the context's code
    assert where[1].startswith(str(venv))  # the fresh venv's packages, not the suite's

    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    assert command[:4] == ["python", "-m", "dockyard", "serve"]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, env=run_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        rows = data.data.iloc[:25]
        refused = httpx.post(f"{url}/v1/endpoints/forest/predict", json={"instances": []})
        assert refused.status_code == 401  # --auth, as in the image
        answer = httpx.post(
            f"{url}/v1/endpoints/forest/predict",
            json={"instances": rows.to_dict(orient="records")},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(rows).tolist()
        assert answer.json()["version"] == "1.0.0"
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught
        assert server.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()
    assert sorted(p.name for p in (context / "registry").iterdir()) == ["artifacts", "dockyard.db"]
