"""The artifact store on an S3-compatible server (moto in server mode, over HTTP)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dockyard.errors import ArtifactIntegrityError
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.mark.s3
def test_register_and_load_through_s3(tmp_path: Any, s3_bucket: Any, cancer: Any) -> None:
    url, options = s3_bucket
    model, X, y = cancer
    settings = Settings(home=tmp_path / "home", artifact_url=url, artifact_options=options)
    with Registry.open(settings) as registry:
        version = registry.register(model, "cancer", sample=X, y=y, aliases=["production"])
        assert registry.artifacts.exists(version.digest)
        loaded = registry.load("cancer@production")
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        # nothing is left in tmp/ after a completed upload
        assert registry.artifacts.fs.glob(f"{registry.artifacts.root}/tmp/*") == []
        # a tampered object is refused
        registry.artifacts.fs.pipe(registry.artifacts.path(version.digest), b"not a model")
        with pytest.raises(ArtifactIntegrityError, match="corrupted"):
            registry.load("cancer@production")
