"""The model registry: metadata (SQL), artifacts (content-addressed, fsspec) and the service
that ties them to the runtimes and the schema code."""

from dockyard.registry.refs import ModelRef
from dockyard.registry.semver import SemVer
from dockyard.registry.service import Registry
from dockyard.registry.types import Event, Model, Version

__all__ = ["Event", "Model", "ModelRef", "Registry", "SemVer", "Version"]
