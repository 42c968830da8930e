"""``make demo``: train two models on bundled data, register them, move aliases, show the
registry the way a user sees it, deploy both, and serve them on http://127.0.0.1:8000.

Runs against a fresh registry in ``./.dockyard-demo`` (or ``DOCKYARD_HOME`` if set), so it
never touches your real one. Needs the ``demo`` extra (LightGBM, palmerpenguins).
``--no-serve`` stops before starting the server; ``--port`` (or ``DOCKYARD_DEMO_PORT``)
picks another port. A busy port is found before anything is trained, and the demo exits
non-zero when the server cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

console = Console(highlight=False)


def _step(title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}", align="left"))


def _cli(*args: str) -> None:
    from dockyard.cli import app

    console.print(f"[dim]$ dockyard {' '.join(args)}[/]")
    with contextlib.suppress(SystemExit):
        app(list(args), standalone_mode=False)


def _check_port(port: int) -> None:
    """Fail before training anything if the port is taken (the server checks again)."""
    from dockyard.errors import UnavailableError
    from dockyard.server.connections import listen

    try:
        listen("127.0.0.1", port).close()
    except UnavailableError as exc:
        console.print(
            f"[red]error:[/] {exc.message} Choose a free one: "
            f"DOCKYARD_DEMO_PORT={port + 1} make demo (or python -m dockyard.demo --port N)."
        )
        raise SystemExit(exc.exit_code) from None


def _serve(port: int) -> None:
    """``dockyard serve --port PORT``; a failure to start ends the demo with its exit code."""
    from dockyard.cli import app
    from dockyard.errors import DockyardError

    console.print(f"[dim]$ dockyard serve --port {port}[/]")
    try:
        app(["serve", "--port", str(port)], standalone_mode=False)
    except DockyardError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(exc.exit_code) from None


def _train_cancer(c: float) -> tuple[Any, Any, Any, float, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    model.fit(X_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    holdout = X_test.assign(label=y_test)  # what a gate scores both versions on
    return model, X_train, y_train, auc, holdout


def _train_penguins() -> tuple[Any, Any, Any, float]:
    import lightgbm
    from palmerpenguins import load_penguins
    from sklearn.model_selection import train_test_split

    frame = load_penguins()
    y = frame.pop("species")
    X = frame.drop(columns=["year"])
    for column in ("island", "sex"):
        X[column] = X[column].astype("category")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = lightgbm.LGBMClassifier(n_estimators=50, num_leaves=7, verbose=-1)
    model.fit(X_train, y_train)
    accuracy = float((model.predict(X_test) == y_test).mean())
    return model, X_train, y_train, accuracy


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dockyard.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("DOCKYARD_DEMO_PORT", 8000)))
    parser.add_argument("--no-serve", action="store_true", help="Stop before serving.")
    args = parser.parse_args(argv)
    if not args.no_serve:
        _check_port(args.port)
    home = Path(os.environ.get("DOCKYARD_HOME", ".dockyard-demo")).resolve()
    if home.name == ".dockyard-demo" and home.exists():
        shutil.rmtree(home)
    os.environ["DOCKYARD_HOME"] = str(home)
    os.environ.setdefault("DOCKYARD_USER", "demo")

    import dockyard
    from dockyard.errors import SchemaValidationError

    console.print(f"[bold]Dockyard {dockyard.__version__} demo[/] — registry in {home}")
    if not args.no_serve:
        console.print(f"It serves on port {args.port} (another: DOCKYARD_DEMO_PORT=N make demo).")

    _step("1. Train and register a breast-cancer classifier (scaler + logistic regression)")
    model, X, y, auc, _ = _train_cancer(c=0.1)
    v1 = dockyard.register(
        model,
        "cancer",
        sample=X,
        y=y,
        metrics={"roc_auc": auc},
        params={"C": 0.1},
        description="Baseline",
        aliases=["production"],
    )
    console.print(f"registered {v1.ref} (roc_auc {auc:.4f}) and pointed production at it")

    _step("2. Retrain, register as a minor bump, stage it, then gate and promote it")
    model2, X2, y2, auc2, holdout = _train_cancer(c=1.0)
    v2 = dockyard.register(
        model2,
        "cancer",
        sample=X2,
        y=y2,
        metrics={"roc_auc": auc2},
        params={"C": 1.0},
        bump="minor",
        description="Less regularisation",
        aliases=["staging"],
    )
    console.print(f"registered {v2.ref} (roc_auc {auc2:.4f}) as staging")
    # production is a protected alias: it moves only on a recorded, passing gate
    holdout_path = home / "cancer-holdout.parquet"
    holdout.to_parquet(holdout_path)
    _cli(
        "gate",
        v2.ref,
        "--against",
        "cancer@production",
        "--data",
        str(holdout_path),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline - 0.02",
        "--promote",
        "production",
    )

    _step("3. A LightGBM model on penguins: categorical columns and missing values")
    penguin_model, PX, py, accuracy = _train_penguins()
    v3 = dockyard.register(
        penguin_model,
        "penguins",
        sample=PX,
        y=py,
        metrics={"accuracy": accuracy},
        aliases=["production"],
        tags={"team": "field-research"},
    )
    console.print(f"registered {v3.ref} (accuracy {accuracy:.3f})")

    _step("4. Load by alias and predict — digest verified, input checked against the signature")
    cancer = dockyard.load("cancer@production")
    console.print(
        f"cancer@production is {cancer.version.version}; "
        f"first 5 predictions: {cancer.predict(X.head(5)).tolist()}"
    )
    penguins = dockyard.load("penguins@production")
    record = {
        "island": "Biscoe",
        "bill_length_mm": 46.1,
        "bill_depth_mm": 13.2,
        "flipper_length_mm": 211.0,
        "body_mass_g": None,
        "sex": "female",
    }
    console.print(f"penguin {record} → {penguins.predict([record]).tolist()}")
    bad = [
        {
            "island": "Atlantis",
            "bill_length_mm": "long",
            "bill_depth_mm": 13.2,
            "flipper_length_mm": 211.0,
            "body_mass_g": 4500.0,
        }
    ]
    try:
        penguins.predict(bad)
    except SchemaValidationError as exc:
        console.print(f"[yellow]bad input refused:[/] {exc}")
        for problem in exc.details["problems"]:
            console.print(
                f"  row {problem['row']}, column {problem['column']}: "
                f"expected {problem['expected']}, got {problem['got']}"
            )

    _step("5. The registry, as the CLI shows it")
    _cli("models", "list")
    _cli("models", "show", "cancer")
    _cli("models", "show", "penguins@production")
    _cli("events", "--limit", "12")

    _step("6. Deploy both and serve them")
    _cli("deploy", "cancer", "cancer@production")
    _cli("deploy", "penguins", "penguins@production", "--max-batch-size", "128")
    base = f"http://127.0.0.1:{args.port}"
    body = json.dumps({"instances": [record]})
    console.print("\nOnce the server says it is ready, in another terminal:")
    console.print(
        f"  curl -s {base}/v1/endpoints/penguins/predict -H 'content-type: application/json' "
        f"-d '{body}'",
        soft_wrap=True,
    )
    for line in (
        f"  curl -s {base}/v2/models/cancer   # Open Inference Protocol metadata",
        f"  curl -s {base}/metrics | grep dockyard_requests_total",
        f"  curl -s '{base}/api/monitoring/penguins/drift?window=1h'   # vs the training data",
        f"  curl -s {base}/v1/endpoints/penguins/feedback -H 'content-type: application/json' "
        '-d \'{"request_id": "<id from a prediction>", "label": "Adelie"}\'',
        f"  DOCKYARD_HOME={home} .venv/bin/dockyard monitor report penguins --out report.html",
        f"  DOCKYARD_HOME={home} .venv/bin/dockyard models list\n",
    ):
        console.print(line, soft_wrap=True)
    if args.no_serve:
        return
    _serve(args.port)


if __name__ == "__main__":
    main()
