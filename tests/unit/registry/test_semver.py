import pytest

from dockyard.errors import InvalidVersionError
from dockyard.registry.semver import SemVer, next_version


@pytest.mark.parametrize("text", ["1.4.0", "0.0.1", "10.20.30", "1.0.0-rc.1", "2.0.0-alpha"])
def test_parse_round_trips(text: str) -> None:
    assert str(SemVer.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["1.4", "v1.4.0", "01.2.3", "1.2.3.4", "", "1.2.-3", "1.0.0+build", "a.b.c", "1.2.3-"]
)
def test_malformed_versions_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        SemVer.parse(text)
    assert "MAJOR.MINOR.PATCH" in str(info.value)


def test_precedence_follows_semver() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    parsed = [SemVer.parse(v) for v in ordered]
    shuffled = parsed[1::2] + parsed[::2]
    assert sorted(shuffled) == parsed


@pytest.mark.parametrize(
    ("start", "bump", "expected"),
    [
        (None, "patch", "1.0.0"),
        (None, "major", "1.0.0"),
        ("1.4.2", "patch", "1.4.3"),
        ("1.4.2", "minor", "1.5.0"),
        ("1.4.2", "major", "2.0.0"),
        ("2.0.0-rc.1", "patch", "2.0.0"),
        ("2.0.0-rc.1", "major", "2.0.0"),
        ("1.2.3-rc.1", "minor", "1.3.0"),
    ],
)
def test_bumps(start: str | None, bump: str, expected: str) -> None:
    base = SemVer.parse(start) if start else None
    assert str(next_version(base, bump)) == expected  # type: ignore[arg-type]


def test_unknown_bump_is_refused() -> None:
    with pytest.raises(InvalidVersionError, match="Unknown bump"):
        next_version(SemVer(1, 0, 0), "huge")  # type: ignore[arg-type]
