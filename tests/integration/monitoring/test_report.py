"""The offline HTML monitoring report: summary first, escaped user strings, no network.

The last test opens the report in a real Chromium (Playwright, system browser) with every
non-file request aborted, and checks that each figure rendered without a page error.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dockyard.monitoring.report import MAX_FEATURE_PLOTS, render_report

EVIL = "<script>alert(1)</script>"
BOLD = "<b>bold</b>"  # plotly.js would draw this as bold "bold" if it reached it unescaped
CHROMIUM = "/usr/bin/chromium"
# figures that plotly.js turned into an SVG with at least one trace drawn in it
DRAWN = (
    "Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".filter(d => d.querySelector('svg.main-svg .trace')).length"
)


def feature(name: str, kind: str, drifted: bool, effect: float, **extra: Any) -> dict[str, Any]:
    numeric = kind == "numeric"
    return {
        "feature": name,
        "kind": kind,
        "rows": 1000,
        "method": "wasserstein" if numeric else "chi2",
        "p_value": None if numeric else 0.0004,
        "p_value_adjusted": None if numeric else 0.0016,
        "effect_size": effect,
        "effect_measure": "wasserstein_normalized" if numeric else "jensen_shannon",
        "threshold": 0.1,
        "drifted": drifted,
        "reason": f"effect {effect} vs threshold" if drifted else "within threshold",
        "stats": {"mean": 1.0},
        "missing": {"reference_rate": 0.01, "current_rate": 0.02, "drifted": False},
        "unseen": None,
        "importance": 0.3,
        "distribution": {
            "edges": [0.0, 10.0, 20.0, 30.0, 40.0],
            "reference": [0.2, 0.3, 0.3, 0.2],
            "current": [0.1, 0.2, 0.3, 0.4],
        },
        **extra,
    }


def window(day: int, share: float | None) -> dict[str, Any]:
    start, end = f"2026-11-{day:02d}T00:00:00+00:00", f"2026-11-{day + 1:02d}T00:00:00+00:00"
    return {"start": start, "end": end, "rows": 800, "drift_share": share, "features": {}}


def performance(day: int, version: str, accuracy: float | None, coverage: float) -> dict[str, Any]:
    ci = None if accuracy is None else [accuracy - 0.02, accuracy + 0.02]
    return {
        "start": f"2026-11-{day:02d}T00:00:00Z",
        "end": f"2026-11-{day + 1:02d}T00:00:00Z",
        "version": version,
        "task": "classification",
        "rows": 1000,
        "labelled": int(1000 * coverage),
        "coverage": coverage,
        "accuracy": accuracy,
        "accuracy_ci": ci,
        **dict.fromkeys(("precision", "recall", "f1", "roc_auc", "log_loss")),
    }


@pytest.fixture
def data() -> dict[str, Any]:
    city = feature(
        "city",
        "categorical",
        True,
        0.21,
        distribution={
            "values": ["Paris", EVIL, BOLD],
            "reference": [0.8, 0.1, 0.1],
            "current": [0.4, 0.3, 0.3],
        },
        unseen={"count": 3, "share": 0.003, "values": [EVIL], "drifted": False},
    )
    prediction = feature("prediction", "numeric", True, 0.15)
    return {
        "endpoint": "churn",
        "generated_at": "2026-11-22T09:30:00+00:00",
        "model": "churn",
        "versions": ["1.1.0", "1.2.0"],
        "window": {
            "start": "2026-11-21T00:00:00+00:00",
            "end": "2026-11-22T00:00:00+00:00",
            "rows": 1000,
            "description": "last 24 hours",
        },
        "baseline": "reference profile of churn@1.2.0",
        "drift": {
            "rows": 1000,
            "reference_rows": 5000,
            "feature_count": 4,
            "drifted_count": 2,
            "drift_share": 0.5,
            "dataset_drifted": True,
            "policy": {"drift_share": 0.3, "alpha": 0.05},
            "features": [
                city,
                feature("tenure_months", "numeric", True, 0.4),
                feature("monthly_spend", "numeric", False, 0.02),
                feature("age", "numeric", False, 0.01, distribution=None),
            ],
            "prediction": prediction,
        },
        "drift_over_time": [window(21, 0.5), window(19, 0.0), window(20, 0.3)],
        "performance_over_time": [
            performance(20, "1.1.0", 0.91, 0.6),
            performance(21, "1.1.0", 0.88, 0.5),
            performance(21, "1.2.0", 0.86, 0.4),
        ],
        "estimated_over_time": [
            {
                "start": "2026-11-21T00:00:00Z",
                "end": "2026-11-22T00:00:00Z",
                "version": "1.2.0",
                "estimated_accuracy": 0.84,
                "rows": 1000,
            },
        ],
        "alerts": [
            {
                "rule": "drift_share > 0.3",
                "status": "firing",
                "since": "2026-11-20T00:00:00Z",
                "value": 0.5,
                "threshold": 0.3,
            },
            {
                "rule": "accuracy < 0.8",
                "status": "ok",
                "since": None,
                "value": 0.86,
                "threshold": 0.8,
            },
        ],
    }


def figures(html: str) -> int:
    return html.count('class="plotly-graph-div"')


def test_summary_comes_first_and_says_what_drifted_since_when(data: dict[str, Any]) -> None:
    html = render_report(data)
    verdict = html.index("Drift detected in 2 of 4 features (50%)")
    assert verdict < html.index('<h2 id="features">') < html.index('class="plotly-graph-div"')
    summary = html[verdict : html.index("</section>")]
    # windows arrive out of order; the 20th and 21st are at or above the policy's 30%
    assert "drifting since 2026-11-20 00:00 UTC" in summary
    for text in (
        "last 24 hours: 2026-11-21 00:00 UTC → 2026-11-22 00:00 UTC, 1,000 rows",
        "reference profile of churn@1.2.0",
        "1.1.0, 1.2.0",
        "1 of 2 firing: <strong>drift_share &gt; 0.3</strong>",
        "0.86 (CI 0.84–0.88); 400 of 1,000 rows labelled (40%); version 1.2.0",
        "0.84 <em>estimated (no labels)</em>",
        "<strong>drifted</strong> (wasserstein, effect size 0.15 ≥ 0.1)",
    ):
        assert text in summary


@pytest.mark.parametrize(
    ("description", "named"),
    [
        ("2026-11-21T00:00:00+00:00 to 2026-11-22T00:00:00+00:00", ""),  # a time window
        ("since 2026-11-21T00:00:00+00:00", ""),
        ("last 1,000 predictions", "last 1,000 predictions: "),
        ("all predictions", "all predictions: "),
    ],
)
def test_window_line_states_the_span_once(
    data: dict[str, Any], description: str, named: str
) -> None:
    data["window"]["description"] = description
    html = render_report(data)
    line = f"<dt>Window</dt><dd>{named}2026-11-21 00:00 UTC → 2026-11-22 00:00 UTC, 1,000 rows</dd>"
    assert line in html
    assert html.count("2026-11-21T00:00:00") == 0  # the raw range is not repeated


@pytest.mark.parametrize(
    ("drifted", "share", "verdict"),
    [
        (2, 0.5, "Drift detected in 2 of 4 features (50%), at least the policy's 30%"),
        (1, 0.25, "No dataset drift: 1 of 4 features (25%) drifted, below the policy's 30%"),
    ],
)
def test_verdict_shows_the_share_that_decides_it(
    data: dict[str, Any], drifted: int, share: float, verdict: str
) -> None:
    data["drift"].update(drifted_count=drifted, drift_share=share, dataset_drifted=share >= 0.3)
    assert verdict in render_report(data)


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        ([0.1, 0.6, 0.7], "drifting since 2026-11-02 00:00 UTC"),
        ([0.6, 0.7, 0.3], "drifting since 2026-11-01 00:00 UTC (the earliest window on record)"),
        ([0.6, None, 0.7], "drifting since 2026-11-03 00:00 UTC"),
        ([0.6, 0.7, 0.1], "not drifting in the latest window"),
    ],
)
def test_drifting_since_is_the_start_of_the_latest_unbroken_run(
    data: dict[str, Any], shares: list[float | None], expected: str
) -> None:
    assert data["drift"]["policy"]["drift_share"] == 0.3  # a share equal to it counts
    data["drift_over_time"] = [window(day, s) for day, s in enumerate(shares, start=1)]
    assert f"<dd>{expected}</dd>" in render_report(data)


def test_user_strings_are_escaped_in_the_page_and_the_plot_labels(data: dict[str, Any]) -> None:
    html = render_report(data)
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # unseen values in the table
    # plotly.js draws entities as text but interprets <b>, so labels go in escaped as well
    assert "&lt;b&gt;bold&lt;" in html
    table = html[html.index("<table>") : html.index("</table>")]
    ranked = [m.group(1) for m in re.finditer(r'<a href="#feature-\d+">([^<]+)</a>', table)]
    assert ranked == ["city", "tenure_months", "monthly_spend", "age"]
    assert "<th>p adjusted (α 0.05)</th>" in table
    assert "0.21 ≥ 0.1 <small>jensen_shannon</small>" in table
    assert "0.02 &lt; 0.1 <small>wasserstein_normalized</small>" in table


def test_document_loads_nothing_from_the_network(data: dict[str, Any]) -> None:
    import plotly.offline  # type: ignore[import-untyped]

    bundle = plotly.offline.get_plotlyjs()
    html = render_report(data)
    assert html.count(bundle) == 1
    page = html.replace(bundle, "")  # the bundle holds URL strings in code it never runs here
    assert "http://" not in page
    assert "https://" not in page
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link\b|@import|url\(", page, re.I)
    assert "MathJax" not in page
    assert "default-src 'none'" in page  # the browser refuses any fetch, even a future one
    assert figures(html) == 1 + 3 + 1 + 1  # prediction, 3 of 4 features, drift share, perf


def test_missing_sections_say_so_plainly() -> None:
    html = render_report(
        {
            "endpoint": "fraud",
            "generated_at": "2026-11-22T09:30:00Z",
            "model": None,
            "versions": [],
            "window": {
                "start": None,
                "end": None,
                "rows": 0,
                "description": "last 1000 predictions",
            },
            "baseline": "window 2026-11-20",
            "drift": None,
            "drift_over_time": [],
            "performance_over_time": [],
            "estimated_over_time": [],
            "alerts": [],
        }
    )
    for sentence in (
        "No drift data for this window.",
        "No feature drift data for this window.",
        "No distribution data for this window.",
        "No drift history for this endpoint.",
        "No performance data: no labelled outcomes and no estimate.",
        "no data: no labelled outcomes for this endpoint",
        "no alert rules evaluated",
        "last 1000 predictions: — → —, 0 rows",
    ):
        assert sentence in html
    assert figures(html) == 0


def test_without_labels_only_the_estimate_is_plotted(data: dict[str, Any]) -> None:
    data["performance_over_time"] = [performance(21, "1.2.0", None, 0.0)]
    html = render_report(data)
    assert "no labels yet (0 of 1,000 rows labelled (0%))" in html
    assert "No labelled outcomes yet: only the estimate is shown." in html
    assert "1.2.0 accuracy (estimate, no labels)" in html


def test_regression_performance_reports_mae(data: dict[str, Any]) -> None:
    data["performance_over_time"] = [
        {
            "start": "2026-11-21T00:00:00Z",
            "end": "2026-11-22T00:00:00Z",
            "version": "1.2.0",
            "task": "regression",
            "rows": 1000,
            "labelled": 900,
            "coverage": 0.9,
            "mae": 3.25,
            "rmse": 4.5,
            "r2": 0.71,
        },
    ]
    html = render_report(data)
    assert "MAE 3.25, RMSE 4.5, R² 0.71; 900 of 1,000 rows labelled (90%)" in html
    assert '"1.2.0 MAE"' in html
    assert "estimate, no labels" not in html  # an accuracy estimate means nothing for MAE


def test_feature_plots_are_capped_drifted_first(data: dict[str, Any]) -> None:
    template = data["drift"]["features"][2]
    many = [copy.deepcopy(template) | {"feature": f"f{i:02d}"} for i in range(60)]
    many[59]["drifted"] = True
    data["drift"]["features"], data["drift"]["prediction"] = many, None
    html = render_report(data)
    assert f"Showing {MAX_FEATURE_PLOTS} of 60 features" in html
    assert figures(html) == MAX_FEATURE_PLOTS + 2  # plus drift share and performance
    assert html.index('id="feature-60"') < html.index('id="feature-1"')
    assert 'id="feature-50"' not in html  # f49 is neither drifted nor in the first 49


def test_report_renders_in_a_browser_without_network(data: dict[str, Any], tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    html = render_report(data)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    errors: list[str] = []
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.add_init_script("window.alert = () => { window.__alerted = true; };")
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            def route(r: Any) -> None:
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(DRAWN + f" === {figures(html)}", timeout=20_000)
            drawn = page.evaluate(DRAWN)
            ticks = page.locator(".xtick text").all_text_contents()
            alerted = page.evaluate("window.__alerted === true")
        finally:
            browser.close()
    assert drawn == figures(html) == 6
    assert errors == []
    assert blocked == []
    assert EVIL in ticks  # category labels are drawn as literal text on the axis
    assert BOLD in ticks
    assert not alerted
