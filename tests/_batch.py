"""A registry for batch-scoring tests: a classifier with an ONNX twin, deployed as an
endpoint, and input files written from the same distribution (``tests/`` is on
``sys.path`` as the root conftest's folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dockyard.settings import Settings

FEATURES = [f"f{i}" for i in range(5)]


@dataclass(frozen=True)
class Scoring:
    """A registry home with ``churn@1.0.0`` (LogisticRegression, ONNX twin; alias
    ``production``) deployed as endpoint ``churn``."""

    home: Path
    settings: Settings
    model: object

    def rows(self, n: int, *, seed: int = 1, shift: float = 0.0) -> pd.DataFrame:
        """``n`` input rows with an ``id`` column (``shift`` moves every feature)."""
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))) + shift, columns=FEATURES)
        frame.insert(0, "id", np.arange(n, dtype=np.int64) + 1000)
        return frame

    def expected(self, frame: pd.DataFrame) -> np.ndarray:
        """What the native model predicts for ``frame``'s rows."""
        return np.asarray(self.model.predict(frame[FEATURES]))  # type: ignore[attr-defined]


def make_scoring(home: Path) -> Scoring:
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3000, len(FEATURES))), columns=FEATURES)
    y = (X["f0"] + 0.5 * X["f1"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    settings = Settings(home=home, user="tester")
    with Registry.open(settings) as registry:
        registry.register(model, "churn", sample=X, y=y, aliases=["production"])
        spec = DeploymentSpec.parse({"routes": [{"model": "churn@production"}]})
        DeploymentStore(registry.db).put("churn", spec, actor="tester")
    return Scoring(home, settings, model)
