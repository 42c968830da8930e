"""The Ray engine on a real local Ray: the same output, rejects and row numbers as the
local engine on the same input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from _batch import Scoring, make_scoring
from dockyard.batch.service import score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray  # dockyard[ray]; the dev extra installs it

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Scoring:
    return make_scoring(tmp_path_factory.mktemp("batch-ray") / "home")


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_the_ray_engine_writes_what_the_local_engine_writes(
    scoring: Scoring, tmp_path: Path, suffix: str
) -> None:
    frame = scoring.rows(1200)
    frame.loc[[5, 700, 1199], "f2"] = np.nan
    source = tmp_path / f"in.{suffix}"
    frame.to_parquet(source) if suffix == "parquet" else frame.to_csv(source, index=False)
    tables = []
    for engine in ("local", "ray"):
        out = tmp_path / engine / "out.parquet"
        summary = score(
            "churn@production", str(source), out=str(out), settings=scoring.settings,
            keep=["id"], batch_rows=250, workers=1, engine=engine,
        )  # fmt: skip
        assert (summary.rows_in, summary.rows_rejected) == (1200, 3)
        tables.append((pq.read_table(out), pq.read_table(out.parent / "out.rejects.parquet")))
    (local, local_rejects), (ray, ray_rejects) = tables
    assert ray.equals(local)
    assert ray_rejects.equals(local_rejects)
    assert ray_rejects.column("row").to_pylist() == [5, 700, 1199]
