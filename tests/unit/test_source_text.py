"""Docstrings, comments and settings' descriptions state intent. Issue numbers belong in commit
messages and CHANGELOG.md; measured figures in benchmarks/RESULTS.md, beside the command and
the machine that produced them."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dockyard"

# "issue 13", "Issue #4", "#13.21", "item 13.18"; not another project's "owner/repo#5056".
ISSUE_NUMBER = re.compile(r"\b[Ii]ssues? #?\d+|(?<![\w/])#\d+\.\d+|\b[Ii]tems? \d+\.\d+")


def test_source_carries_no_issue_numbers() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ISSUE_NUMBER.search(line)
    ]
    assert found == []


def test_the_pattern_finds_issue_numbers() -> None:
    for text in ("see issue 13", "Issue #4 asked", "(#13.21)", "item 13.18 removed it"):
        assert ISSUE_NUMBER.search(text), text
    for text in ("bentoml/BentoML#5056", "color:#222", "an issued token", "items 3"):
        assert not ISSUE_NUMBER.search(text), text
