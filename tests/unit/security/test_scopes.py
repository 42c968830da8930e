"""Scopes: the whole matrix, parsing, and the documented table kept honest."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dockyard.security
from dockyard.errors import InvalidRequestError
from dockyard.security import scopes
from dockyard.security.scopes import SCOPES, allows, expand, parse_scopes

# granted -> the scopes it allows; written out by hand, independently of scopes.IMPLIES
EXPECTED = {
    "read": {"read"},
    "predict": {"predict"},
    "deploy": {"deploy", "read"},
    "admin": {"read", "predict", "deploy", "admin"},
}


@pytest.mark.parametrize("needed", SCOPES)
@pytest.mark.parametrize("granted", SCOPES)
def test_every_single_scope_pair_follows_the_matrix(granted: str, needed: str) -> None:
    assert allows({granted}, needed) is (needed in EXPECTED[granted])


def _subsets() -> list[frozenset[str]]:
    return [
        frozenset(s for i, s in enumerate(SCOPES) if mask & (1 << i))
        for mask in range(1 << len(SCOPES))
    ]


@pytest.mark.parametrize("granted", _subsets(), ids=lambda s: "+".join(sorted(s)) or "none")
def test_every_combination_allows_the_union_of_its_members(granted: frozenset[str]) -> None:
    union = set().union(*(EXPECTED[g] for g in granted))
    assert {needed for needed in SCOPES if allows(granted, needed)} == union
    assert expand(granted) == union


def test_read_and_predict_are_independent() -> None:
    assert not allows({"predict"}, "read")
    assert not allows({"read"}, "predict")
    assert not allows({"deploy"}, "predict")


def test_nothing_granted_allows_nothing() -> None:
    assert not any(allows(set(), needed) for needed in SCOPES)
    assert not any(allows((), needed) for needed in SCOPES)


def test_unknown_granted_scopes_grant_nothing() -> None:
    assert not any(allows({"superuser", "ADMIN"}, needed) for needed in SCOPES)
    assert expand({"superuser"}) == frozenset()


def test_asking_for_an_unknown_scope_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown scope 'raed'"):
        allows({"admin"}, "raed")


def test_parse_normalises_case_space_and_duplicates() -> None:
    assert parse_scopes([" Predict", "read", "READ "]) == frozenset({"predict", "read"})
    assert parse_scopes(iter(SCOPES)) == frozenset(SCOPES)


def test_parse_of_nothing_is_empty() -> None:
    assert parse_scopes([]) == frozenset()


@pytest.mark.parametrize("bad", ["write", "", "admin,read", "*"])
def test_parse_names_the_valid_scopes_on_an_unknown_one(bad: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_scopes(["read", bad])
    message = str(info.value)
    assert repr(bad) in message
    assert "Valid scopes: read, predict, deploy, admin." in message
    assert info.value.details == {"scope": bad, "valid": list(SCOPES)}
    assert info.value.exit_code == 2


def test_docstring_matrix_matches_the_code() -> None:
    doc = scopes.__doc__ or ""
    all_lines = doc.splitlines()
    top = next(i for i, line in enumerate(all_lines) if "granted \\ needed" in line)
    lines = all_lines[top:]
    header = ["read", "predict", "deploy", "admin"]
    assert lines[0].split()[3:] == header
    centres = {name: lines[0].index(name) + len(name) / 2 for name in header}
    documented = {}
    for line in lines[1:5]:
        ticks = [i for i, char in enumerate(line) if char == "✓"]
        documented[line.split()[0]] = {
            min(header, key=lambda name: abs(centres[name] - i)) for i in ticks
        }
    assert documented == EXPECTED


def test_package_exports_resolve_to_their_modules() -> None:
    from dockyard.security import tokens

    for name in dockyard.security.__all__:
        home = scopes if hasattr(scopes, name) else tokens
        assert getattr(dockyard.security, name) is getattr(home, name)
    with pytest.raises(AttributeError):
        dockyard.security.nothing_here


def test_scope_checks_import_no_io_library() -> None:
    probe = (
        "import sys, json\nfrom dockyard.security import allows, parse_scopes\n"
        "print(json.dumps([m for m in ('sqlalchemy', 'alembic', 'prometheus_client') "
        "if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
