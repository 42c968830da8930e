"""Attack: user-chosen names with a trailing newline, a carriage return, a NUL, or no end.

``^...$`` with ``re.match`` let ``abc\\n`` through: a model ``abc\\n``, an endpoint ``ep\\n``
that split log lines and created a folder, a token ``nl\\n`` that could not be revoked by
name, and a 5,006-character version string was stored. Every kind of name is refused whole
(in the library, the CLI with one line and exit 2, and the HTTP API with a 4xx), and nothing
is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from _cli import CLI
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.errors import InvalidRequestError
from dockyard.monitoring.alerts import AlertRule
from dockyard.registry import Registry
from dockyard.registry.refs import ModelRef, check_alias, check_model_name, check_tag_key
from dockyard.registry.semver import SemVer
from dockyard.security.tokens import check_token_name
from dockyard.settings import Settings


def _bad(good: str, longest: int) -> list[str]:
    """``good`` spoiled every way the attack tried, plus one character too long."""
    return [
        f"{good}\n",
        f"{good}\r",
        f"{good}\r\n",
        f"{good}\x00",
        f"\n{good}",
        f"{good[:1]}\n{good[1:]}",
        f" {good}",
        f"{good}\u2028",
        "x" * (longest + 1),
    ]


def _rule(name: str) -> None:
    AlertRule.model_validate({"name": name, "metric": "error_rate", "threshold": 0.1})


# (kind, check, a good value, its longest length)
KINDS: list[tuple[str, Callable[[str], object], str, int]] = [
    ("model name", check_model_name, "fraud", 128),
    ("alias", check_alias, "production", 64),
    ("tag key", check_tag_key, "team", 128),
    ("token name", check_token_name, "ci", 128),
    ("version", SemVer.parse, "1.0.0", 128),
    ("reference", ModelRef.parse, "fraud@1.0.0", 128 + 1 + 128),
    ("alias reference", ModelRef.parse, "fraud@production", 128 + 1 + 64),
    ("alert rule", _rule, "errors", 63),
]


@pytest.mark.parametrize(("kind", "check", "good", "longest"), KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_of_name_is_matched_whole_and_bounded(
    kind: str, check: Callable[[str], object], good: str, longest: int
) -> None:
    check(good)
    for bad in _bad(good, longest):
        with pytest.raises((InvalidRequestError, ValidationError)):
            check(bad)


def test_a_refused_overlong_name_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        SemVer.parse("1.0.0-" + "a" * 5000)
    assert len(caught.value.message) < 200
    assert "5,006 characters" in caught.value.message


def test_sticky_header_and_spec_references_are_matched_whole() -> None:
    for header in ("x-key\n", "x-key\r", "x" * 65):
        with pytest.raises(InvalidRequestError):
            DeploymentSpec.parse(
                {"routes": [{"model": "m@1.0.0"}], "traffic": {"sticky_header": header}}
            )
    for ref in ("m@1.0.0\n", "m\n@1.0.0", "m@production\n"):
        with pytest.raises(InvalidRequestError):
            DeploymentSpec.parse({"routes": [{"model": ref}]})


# --- through the registry, the CLI and the HTTP API -----------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one small model ``m`` (1.0.0, aliased production) and its skops file."""
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    skops.io.dump(model, home / "model.skops")
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "m", sample=X, version="1.0.0", aliases=["production"])
    return home


def _state(home: Path) -> tuple[Any, ...]:
    with Registry.open(Settings(home=home, user="tester")) as registry:
        models = [(m.name, m.tags) for m in registry.list_models()]
        versions = [(str(v.version), v.tags, v.aliases) for v in registry.list_versions("m")]
        deployments = [d.name for d in DeploymentStore(registry.db).list()]
        events = len(registry.events(limit=10_000))
    return models, versions, deployments, events


def _cli(home: Path, *args: str) -> str:
    """Run a command that must fail with one line and exit 2; return the line."""
    return CLI(home).fails(*args, code=2)


@pytest.mark.slow  # a command-line process per name
def test_the_cli_refuses_each_kind_with_one_line(home: Path) -> None:
    before = _state(home)
    model = str(home / "model.skops")
    long_version = "1.0.0-" + "a" * 5000
    for args in [
        ("models", "register", "abc\n", model),
        ("models", "register", "abc\r", model),
        ("models", "register", "a" * 129, model),
        ("models", "register", "m", model, "--version", "1.0.1\n"),
        ("models", "register", "m", model, "--version", long_version),
        ("models", "register", "m", model, "--alias", "prod\n"),
        ("models", "register", "m", model, "--tag", "te\nam=x"),
        ("models", "alias", "m@1.0.0", "staging\n"),
        ("models", "tag", "m@1.0.0", "te\ram=x"),
        ("models", "tag", "m@1.0.0", "team=" + "x" * 5000),
        ("deploy", "ep\n", "m@1.0.0"),
        ("deploy", "ep", "m@1.0.0\n"),
        ("tokens", "create", "nl\n", "--scope", "read"),
        ("tokens", "create", "t" * 129, "--scope", "read"),
    ]:
        line = _cli(home, *args)
        assert "\\n" in line or "\\r" in line or "characters" in line or "valid" in line, line
    assert _state(home) == before


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    from _server import ServerProcess

    process = ServerProcess(home)
    try:
        process.wait_ready()
        yield process.url
    finally:
        process.stop()


@pytest.mark.slow  # a real `dockyard serve` process
def test_the_api_refuses_each_kind_with_a_4xx(home: Path, server: str) -> None:
    before = _state(home)
    spec = {"spec": {"routes": [{"model": "m@1.0.0"}]}}
    with httpx.Client(base_url=server, timeout=30) as client:
        for name in ("ep%0A", "ep%0D", "ep%00", "e" * 129):
            reply = client.put(f"/api/deployments/{name}", json=spec)
            assert reply.status_code == 400, (name, reply.text)
            assert reply.json()["code"] == "invalid_name"
        for ref in ("m@1.0.0\n", "m\r@1.0.0", "m@1.0.0-" + "a" * 5000):
            reply = client.put("/api/deployments/ep", json={"model": ref})
            assert reply.status_code == 400, (ref, reply.text)
        for alias in ("staging%0A", "staging%0D", "staging%00", "s" * 65):
            reply = client.put(f"/api/models/m/aliases/{alias}", json={"version": "1.0.0"})
            assert 400 <= reply.status_code < 500, (alias, reply.text)
        for version in ("1.0.0\n", "1.0.0\r", "1.0.0-" + "a" * 5000):
            reply = client.put("/api/models/m/aliases/staging", json={"version": version})
            assert 400 <= reply.status_code < 500, (version, reply.text)
        rule = {"name": "errors\n", "metric": "error_rate", "threshold": 0.1}
        monitored = {"routes": [{"model": "m@1.0.0"}], "monitoring": {"alerts": [rule]}}
        reply = client.put("/api/deployments/ep", json={"spec": monitored})
        assert reply.status_code == 400, reply.text
    assert _state(home) == before
