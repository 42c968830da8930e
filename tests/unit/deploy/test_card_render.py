"""The card's Markdown and HTML say the same things, fairness and missing sections included."""

from __future__ import annotations

from typing import Any

from dockyard.deploy.card_render import render_card


def card(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ref": "credit@1.2.0",
        "aliases": ["production"],
        "status": "active",
        "runtime": "sklearn",
        "registered": {"at": "2026-12-01T10:00:00+00:00", "by": "ana"},
        "description": "",
        "intended_use": None,
        "limitations": "Not for <21 | minors",
        "data": {"rows": 400, "sha256": "ab12"},
        "metrics": {},
        "gates": [
            {
                "id": 7,
                "at": "2026-12-01T11:00:00+00:00",
                "by": "ci",
                "passed": True,
                "baseline": "credit@1.1.0",
                "rows": 400,
                "requirements": [
                    {
                        "requirement": "demographic_parity_difference <= 0.1",
                        "candidate": 0.04,
                        "baseline": 0.06,
                        "threshold": 0.1,
                        "passed": True,
                    }
                ],
                "fairness": {
                    "sex": {
                        "candidate": {
                            "groups": {
                                "f": {
                                    "selection_rate": 0.41,
                                    "accuracy": 0.9,
                                    "tpr": 0.8,
                                    "fpr": 0.1,
                                    "count": 200.0,
                                },
                                "m": {
                                    "selection_rate": 0.45,
                                    "accuracy": 0.88,
                                    "tpr": None,
                                    "fpr": 0.12,
                                    "count": 200.0,
                                },
                            },
                            "summary": {"demographic_parity_difference": 0.04},
                        }
                    }
                },
            }
        ],
        "signature": None,
        "importance": None,
        "environment": {"python": "3.11.7"},
        "lineage": {"source": "object", "code_revision": None},
        "approvals": [],
        "live": [],
    }
    return {**base, **changes}


def test_markdown_has_fairness_groups_and_says_what_is_missing() -> None:
    text = render_card(card(), "md")
    assert "## Intended use\n\nNot stated.\n" in text
    assert "Not for <21 \\| minors" not in text  # a paragraph, not a table cell
    assert "Not for <21 | minors" in text
    assert "Gate #7, by sex:" in text
    assert "| f | 0.41 | 0.9 | 0.8 | 0.1 | 200 |" in text
    assert "| m | 0.45 | 0.88 | — | 0.12 | 200 |" in text  # an undefined rate is a dash
    assert "No alias has pointed at this version." in text
    assert "Not served by any endpoint." in text
    assert "No signature: inputs are not validated." in text


def test_html_escapes_and_loads_nothing() -> None:
    page = render_card(card(), "html")
    assert "Not for &lt;21 | minors" in page
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page
    assert page.count("<section") == 13  # summary + the twelve sections of the card
