"""Many processes at once, and processes killed mid-registration, on both databases."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.registry import Registry
from dockyard.settings import Settings

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    import dockyard

    gate, count = Path(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(os.getpid())
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    print("ready", flush=True)
    while not gate.exists():
        time.sleep(0.01)
    for _ in range(count):
        v = dockyard.register(model, "shared", sample=X, y=y)
        print(v.version, flush=True)
    """
)

KILLED = textwrap.dedent(
    """
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    import dockyard

    rng = np.random.default_rng()
    X = rng.normal(size=(2000, 10))
    y = (X[:, 0] + rng.normal(size=2000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=30, random_state=int(rng.integers(1000))).fit(X, y)
    print("ready", flush=True)
    while True:
        dockyard.register(model, "victim", sample=X, y=y)
    """
)


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_HOME"] = str(settings.home)
    env["DOCKYARD_USER"] = "worker"
    if settings.database_url:
        env["DOCKYARD_DATABASE_URL"] = settings.database_url
    return env


@pytest.mark.slow
def test_eight_processes_get_distinct_versions(settings: Settings, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(gate), "3"],
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for worker in workers:  # all imported and fitted; the database does not exist yet:
        assert worker.stdout is not None  # the migration races too
        if worker.stdout.readline().strip() != "ready":
            pytest.fail(f"a worker failed to start:\n{worker.communicate(timeout=60)[1]}")
    gate.touch()
    printed: list[str] = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr
        printed += stdout.split()
    assert len(printed) == 24
    assert len(set(printed)) == 24
    with Registry.open(settings) as registry:
        stored = [v.version for v in registry.list_versions("shared")]
        assert sorted(stored) == sorted(printed)
        assert sorted(printed, key=lambda v: tuple(map(int, v.split(".")))) == [
            f"1.0.{i}" for i in range(24)
        ]
        assert len(registry.events(model="shared", action="version.register", limit=100)) == 24
        chain = registry.verify_events()  # eight writers, one hash chain
        assert chain.intact, chain.breaks
        assert chain.events == len(registry.events(limit=1000))
        for version in stored:
            registry.load(f"shared@{version}")  # digest verified, model loads


@pytest.mark.slow
def test_sigkill_mid_registration_leaves_no_version_without_its_artifact(
    settings: Settings,
) -> None:
    rng = random.Random(7)
    for _ in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED],
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 1.5))  # a random moment to strike, not a wait
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    with Registry.open(settings) as registry:
        versions = registry.list_versions("victim") if _has_model(registry) else []
        for version in versions:
            assert registry.artifacts.exists(version.digest)
            registry.load(version.ref)  # raises if the bytes do not match the digest
        if registry.db.dialect == "sqlite":
            with registry.db.read() as conn:
                assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
        registered = registry.events(model="victim", action="version.register", limit=1000)
        assert len(registered) == len(versions)


def _has_model(registry: Registry) -> bool:
    return any(m.name == "victim" for m in registry.list_models())
