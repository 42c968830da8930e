"""``dockyard models card`` and the card route: every section from what the registry, the
audit trail and the deployments hold, in Markdown and in HTML that renders offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from _cli import run
from dockyard.registry import Registry
from dockyard.settings import Settings

CHROMIUM = "/usr/bin/chromium"
USE = "Ranking loan applications for manual review; never an automatic refusal."
LIMITS = "Trained on 2024 applicants from one region; not validated for under-21s."


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``credit`` 1.0.0 and 1.0.1 (with intended use and limitations), each gated and promoted
    to ``production``, and an endpoint following production."""
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["income", "debt", "tenure"])
    y = (X.income - X.debt > 0).astype(int)
    root = tmp_path_factory.mktemp("card")
    path = root / "home"
    with Registry.open(Settings(home=path, user="tester")) as registry:
        for trees in (5, 40):
            model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(X, y)
            registry.register(model, "credit", sample=X, y=y, intended_use=USE, limitations=LIMITS)
    data = root / "eval.csv"
    X.assign(y=y).to_csv(data, index=False)
    gate = ["--data", str(data), "--target", "y", "--require", "accuracy >= 0.6"]
    run(path, "gate", "credit@1.0.0", *gate, "--promote", "production")
    run(
        path,
        "gate",
        "credit@1.0.1",
        *gate,
        "--against",
        "credit@production",
        "--promote",
        "production",
    )
    run(path, "deploy", "credit", "credit@production")
    return path


def test_the_markdown_card_has_every_section(home: Path) -> None:
    text = run(home, "models", "card", "credit@1.0.1").stdout
    assert text.startswith("# Model card: credit@1.0.1")
    for heading in (
        "Intended use",
        "Limitations",
        "Training data",
        "Metrics",
        "Evaluations (gates)",
        "Fairness",
        "Signature",
        "Global importance",
        "Environment",
        "Lineage",
        "Approvals",
        "Live status",
    ):
        assert f"\n## {heading}\n" in text, heading
    assert USE in text
    assert LIMITS in text
    assert "against credit@1.0.0 on 400 rows: passed" in text
    assert "| accuracy >= 0.6 |" in text
    assert "tree_shap (shap TreeExplainer)" in text
    assert "| production | 1.0.0 |" in text  # the approval: alias, previous version
    assert "| credit | route | 100 |" in text  # served by the endpoint


def test_the_json_card_matches_the_audit_trail(home: Path) -> None:
    card: dict[str, Any] = json.loads(
        run(home, "models", "card", "credit@production", "--json").stdout
    )
    assert card["ref"] == "credit@1.0.1"
    assert card["intended_use"] == USE
    (gate,) = card["gates"]
    assert gate["passed"] is True
    assert gate["baseline"] == "credit@1.0.0"
    (approval,) = card["approvals"]
    assert approval["alias"] == "production"
    assert approval["gate"] == gate["id"]
    assert approval["gate_passed"] is True
    assert card["data"]["rows"] == 400
    assert set(card["importance"]["importance"]) == {"income", "debt", "tenure"}
    assert [entry["endpoint"] for entry in card["live"]] == ["credit"]
    first = json.loads(run(home, "models", "card", "credit@1.0.0", "--json").stdout)
    assert first["live"] == []  # production moved on: no endpoint serves 1.0.0 now


def test_the_html_card_renders_offline_in_chromium(home: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    page_path = tmp_path / "card.html"
    run(home, "models", "card", "credit@1.0.1", "--format", "html", "--out", str(page_path))
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def route(r: Any) -> None:
                if not r.request.url.startswith("file://"):
                    requested.append(r.request.url)
                    r.abort()
                else:
                    r.continue_()

            page.route("**/*", route)
            page.goto(page_path.as_uri(), wait_until="load")
            headings = page.locator("h2").all_text_contents()
            intended = page.locator("#intended p").text_content()
            rows = page.locator("#approvals tr").count()
        finally:
            browser.close()
    assert requested == []
    assert "Global importance" in headings
    assert "Live status" in headings
    assert intended == USE
    assert rows == 2  # header + the one approval


def test_an_unknown_format_is_one_line(home: Path) -> None:
    result = run(home, "models", "card", "credit@1.0.1", "--format", "pdf", code=2)
    assert "Unknown format 'pdf'" in result.stderr
