"""The README documents every setting and starts with the two-command quickstart."""

from pathlib import Path

from dockyard.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"DOCKYARD_{name.upper()}" in README, f"DOCKYARD_{name.upper()} is undocumented"


def test_quickstart_is_exactly_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["make demo", "make test"]
