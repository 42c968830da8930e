"""A small registry for the attack tests on the HTTP edge: a diabetes Ridge regressor (with a
signature) deployed as ``diabetes``, and tokens made straight in its database; and reading a
raw socket to its end."""

from __future__ import annotations

import socket
from pathlib import Path

from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

ROW = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.01}


def diabetes_home(home: Path) -> Settings:
    """A registry at ``home`` with ``diabetes@1.0.0`` deployed as endpoint ``diabetes``."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes(as_frame=True)
    settings = Settings(home=home, user="tester")
    with Registry.open(settings) as registry:
        registry.register(
            Ridge().fit(data.data, data.target),
            "diabetes",
            sample=data.data,
            y=data.target,
            accelerate=False,
        )
        spec = DeploymentSpec.parse({"routes": [{"model": "diabetes@1.0.0"}]})
        DeploymentStore(registry.db).put("diabetes", spec, actor="tester")
    return settings


def make_token(settings: Settings, name: str, *scopes: str) -> str:
    """A new token's secret."""
    db = Database(settings.resolved_database_url)
    try:
        return TokenStore(db).create(name, list(scopes), actor="tester")[1]
    finally:
        db.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def read_all(sock: socket.socket) -> bytes:
    """Everything the other end sends until it closes the connection (a reset ends it too)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data
