"""Drift policy: which test decides drift and at what threshold, per endpoint and feature.

Kept apart from ``drift.py`` (numpy, pandas, scipy) because deployment specs embed it, and
reading a spec (``dockyard deploy``, the control plane) should not import the statistics.
Monitoring never reads deployments: whoever builds a
:class:`~dockyard.monitoring.service.Monitor` hands it the endpoints' policies
(:class:`Policies`; the deploy layer's ``Deployments`` is one).
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DriftPolicy", "FeaturePolicy", "Policies"]


class FeaturePolicy(BaseModel):
    """How one feature is tested (overrides :class:`DriftPolicy` defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["auto", "ks", "wasserstein", "psi", "chi2", "jensen_shannon"] = Field(
        "auto", description="Test deciding drift; auto picks by kind and sample size."
    )
    threshold: float | None = Field(
        None, ge=0, description="Effect-size (or PSI) threshold overriding the default."
    )
    ignore: bool = Field(False, description="Leave the feature out of drift detection.")


class DriftPolicy(BaseModel):
    """Thresholds and defaults of drift detection, configurable per endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1, description="False-discovery rate (BH).")
    numeric_threshold: float = Field(0.1, ge=0, description="Wasserstein distance in std.")
    categorical_threshold: float = Field(0.1, ge=0, le=1, description="Jensen–Shannon.")
    psi_threshold: float = Field(0.2, ge=0, description="Population stability index.")
    missing_rate_threshold: float = Field(
        0.05, gt=0, le=1, description="Absolute change in missing rate that counts as drift."
    )
    unseen_threshold: float = Field(
        0.01, gt=0, le=1, description="Share of rows with unseen categories that is drift."
    )
    large_sample: int = Field(1000, ge=1, description="Above: effect-size test by default.")
    min_rows: int = Field(30, ge=1, description="Fewer rows: insufficient data.")
    drift_share: float = Field(0.5, gt=0, le=1, description="Drifted share: dataset drift.")
    features: dict[str, FeaturePolicy] = Field(
        default_factory=dict, description="Per-feature overrides, by feature name."
    )


class Policies(Protocol):
    """Where a monitor learns each endpoint's monitoring policy."""

    def drift_policy(self, name: str) -> DriftPolicy | None:
        """The endpoint's drift policy; ``None`` when no endpoint of that name is deployed."""
        ...
