import pytest

from dockyard.errors import InvalidNameError, InvalidReferenceError
from dockyard.registry.refs import ModelRef, check_alias, check_model_name
from dockyard.registry.semver import SemVer


def test_bare_name() -> None:
    assert ModelRef.parse("fraud") == ModelRef("fraud")


def test_version_reference() -> None:
    assert ModelRef.parse("fraud@1.4.0") == ModelRef("fraud", version=SemVer(1, 4, 0))


def test_alias_reference() -> None:
    ref = ModelRef.parse("fraud@production")
    assert ref.alias == "production"
    assert ref.version is None
    assert str(ref) == "fraud@production"


@pytest.mark.parametrize(
    "text", ["", "@prod", "fraud@", "fraud@1.4", "fraud@prod@x", "fr aud", "fraud@-x", "../etc"]
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ModelRef.parse(text)


def test_latest_is_reserved_for_setting_but_resolvable() -> None:
    assert ModelRef.parse("fraud@latest").alias == "latest"
    with pytest.raises(InvalidNameError, match="reserved"):
        check_alias("latest")


@pytest.mark.parametrize("name", ["a" * 129, "-x", "x/y", "x y", ""])
def test_bad_model_names(name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_model_name(name)
