"""Storing, recognising and loading model formats.

:class:`Runtimes` chooses a runtime for a fitted object or a file; each runtime implements
the :class:`Runtime` protocol from :mod:`dockyard.runtimes.base`. Importing this package
imports no framework (numpy, scikit-learn, onnxruntime, torch...): runtimes import theirs
when a model of their kind is stored or loaded.
"""

from dockyard.runtimes.base import Artifact, LoadedModel, Runtime
from dockyard.runtimes.catalog import Runtimes

__all__ = ["Artifact", "LoadedModel", "Runtime", "Runtimes"]
