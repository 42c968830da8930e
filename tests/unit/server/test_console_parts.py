"""The console's pure parts: CSRF tokens and the sign-in redirect, cookies, live rates from
Prometheus text, and the shapes pages draw (metrics side by side, the drift heatmap)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dockyard.errors import PermissionDeniedError
from dockyard.server.console import live, views
from dockyard.server.console.session import (
    CSRF_COOKIE,
    check_csrf,
    cleared_session,
    csrf_token,
    safe_next,
    session_cookie,
)


def test_a_csrf_token_fits_only_its_nonce_and_session() -> None:
    token = csrf_token("nonce-1", "dky_secret")
    cookies = {CSRF_COOKIE: "nonce-1"}
    check_csrf({"csrf": token}, cookies, "dky_secret", origin=None, host="h:1")
    for form, jar, session in (
        ({}, cookies, "dky_secret"),
        ({"csrf": token}, {}, "dky_secret"),
        ({"csrf": token}, {CSRF_COOKIE: "nonce-2"}, "dky_secret"),
        ({"csrf": token}, cookies, "dky_other"),
        ({"csrf": token}, cookies, None),
    ):
        with pytest.raises(PermissionDeniedError):
            check_csrf(form, jar, session, origin=None, host="h:1")


def test_a_form_from_another_origin_is_refused() -> None:
    token = csrf_token("n", None)
    jar = {CSRF_COOKIE: "n"}
    check_csrf({"csrf": token}, jar, None, origin="http://h:1", host="h:1")
    with pytest.raises(PermissionDeniedError):
        check_csrf({"csrf": token}, jar, None, origin="http://evil:1", host="h:1")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/deployments", "/ui/deployments"),
        (None, "/ui"),
        ("//evil.test/ui", "/ui"),
        ("https://evil.test/ui", "/ui"),
        ("/ui\\..\\x", "/ui"),
        ("/ui/a b", "/ui"),
        ("/api/models", "/ui"),
    ],
)
def test_sign_in_returns_only_to_console_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_session_cookies_carry_the_flags() -> None:
    plain = session_cookie("dky_x", secure=False).split("; ")
    assert plain[0] == "dockyard_session=dky_x"
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui"} <= set(plain)
    assert "Secure" not in plain
    assert "Secure" in session_cookie("dky_x", secure=True).split("; ")
    assert "Max-Age=0" in cleared_session(secure=False)


EXPOSITION = """\
# TYPE dockyard_requests counter
dockyard_requests_total{{endpoint="fraud",version="1.0.0",status="200"}} {ok}
dockyard_requests_total{{endpoint="fraud",version="1.1.0",status="200"}} {canary}
dockyard_requests_total{{endpoint="fraud",version="1.1.0",status="500"}} {failed}
# TYPE dockyard_request_duration_seconds histogram
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.0.0",le="0.001"}} {fast}
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.0.0",le="0.01"}} {slow}
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.0.0",le="+Inf"}} {slow}
dockyard_request_duration_seconds_count{{endpoint="fraud",version="1.0.0"}} {slow}
dockyard_request_duration_seconds_sum{{endpoint="fraud",version="1.0.0"}} 1.0
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.1.0",le="0.001"}} 0
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.1.0",le="0.01"}} 0
dockyard_request_duration_seconds_bucket{{endpoint="fraud",version="1.1.0",le="+Inf"}} {canary_slow}
dockyard_request_duration_seconds_count{{endpoint="fraud",version="1.1.0"}} {canary_slow}
dockyard_request_duration_seconds_sum{{endpoint="fraud",version="1.1.0"}} 1.0
"""


def test_live_rates_per_endpoint_and_variant_over_the_window() -> None:
    texts = iter(
        [
            EXPOSITION.format(ok=0, canary=0, failed=0, fast=0, slow=0, canary_slow=0),
            EXPOSITION.format(ok=90, canary=8, failed=2, fast=50, slow=90, canary_slow=10),
        ]
    )
    now = iter([0.0, 10.0, 10.0])
    traffic = live.LiveTraffic(lambda: next(texts), clock=lambda: next(now))
    traffic.sample()
    figures = traffic.figures(60)
    fraud = figures["endpoints"]["fraud"]
    assert figures["window_s"] == 10.0
    assert fraud["rps"] == 10.0
    assert fraud["error_rate"] == 0.02
    canary = fraud["variants"]["1.1.0"]
    assert (canary["rps"], canary["requests"], canary["error_rate"]) == (1.0, 10, 0.2)
    assert fraud["variants"]["1.0.0"]["error_rate"] == 0.0
    # the endpoint's quantiles over both variants' buckets: 50 under 1 ms, 40 under 10 ms,
    # 10 (the canary's) past the last bound
    assert fraud["p50_ms"] == pytest.approx(1.0)  # the 50th of 100 is the first bucket's top
    assert fraud["p99_ms"] == pytest.approx(10.0)
    baseline = fraud["variants"]["1.0.0"]
    assert baseline["p50_ms"] == pytest.approx(0.9)  # the 45th of 90: 45/50 into (0, 1 ms]
    assert baseline["p99_ms"] == pytest.approx(9.8)  # the 89.1th: 39.1/40 into (1, 10 ms]
    assert canary["p50_ms"] == pytest.approx(10.0)  # every canary request past 10 ms
    assert figures["series"]["fraud"] == [10.0]


def test_a_quantile_of_an_empty_histogram_is_none() -> None:
    assert live.quantile({}, 0.5) is None
    assert live.quantile({0.1: 0.0, float("inf"): 0.0}, 0.99) is None
    assert live.quantile({0.1: 0.0, float("inf"): 4.0}, 0.5) == 0.1  # past the last bound


def _version(version: str, **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(version=version, metrics=metrics)


def test_metrics_side_by_side_mark_the_best_of_each_row() -> None:
    table = views.metric_table(
        [_version("1.0.0", auc=0.9, log_loss=0.3), _version("1.1.0", auc=0.95, log_loss=0.4)]
    )
    assert table["versions"] == ["1.0.0", "1.1.0"]
    rows = {row["name"]: row for row in table["rows"]}
    assert rows["auc"]["best"] == 0.95  # higher is better
    assert rows["log_loss"]["best"] == 0.3  # a loss: lower is better
    single = views.metric_table([_version("1.0.0", auc=0.9)])
    assert single["rows"][0]["best"] is None  # nothing to compare with


def test_the_heatmap_marks_the_cells_each_windows_test_found_drifted() -> None:
    over_time = [
        {
            "start": "s",
            "end": "e1",
            "rows": 10,
            "drift_share": 0.5,
            "features": {"a": 0.05, "b": 0.2, "c": 0.5},
            "drifted": ["b"],
        },
        {"start": "s", "end": "e2", "rows": 10, "drift_share": 0.0, "features": {"a": None}},
    ]
    report = {"features": [{"feature": f, "threshold": 0.1} for f in ("a", "b", "c")]}
    heat = views.heatmap(over_time, report)
    assert heat["features"] == ["a", "b", "c"]
    first, second = heat["rows"]
    assert [c["drifted"] for c in first["cells"]] == [False, True, False]  # the test decides
    assert first["cells"][0]["level"] == 2  # half the threshold: the middle shades
    assert first["cells"][1]["level"] == views.HEAT_LEVELS - 1
    assert first["cells"][2]["level"] == views.HEAT_LEVELS - 2  # large, yet not drifted
    assert [c["effect"] for c in second["cells"]] == [None, None, None]


def test_pages_clamp_to_what_exists() -> None:
    assert views.pager(9, 25, 30).page == 2
    assert views.pager(0, 25, 0).page == 1
    assert views.pager(3, 25, 100).offset == 50


def test_distributions_pair_current_with_reference_drifted_first() -> None:
    drift = {
        "features": [
            {
                "feature": "calm",
                "drifted": False,
                "distribution": {
                    "values": ["x", "y"],
                    "reference": [0.5, 0.5],
                    "current": [0.5, 0.5],
                },
            },
            {
                "feature": "moved",
                "drifted": True,
                "distribution": {
                    "edges": [0, 1, 2],
                    "reference": [0.8, 0.2],
                    "current": [0.2, 0.8],
                },
            },
            {"feature": "empty", "drifted": False, "distribution": {}},
        ],
        "prediction": None,
    }
    found = views.distributions(drift)
    assert [d["name"] for d in found] == ["moved", "calm"]
    moved = found[0]["bins"]
    assert [(b["r"], b["c"]) for b in moved] == [(100, 25), (25, 100)]
    assert moved[0]["label"] == "0 to 1"
