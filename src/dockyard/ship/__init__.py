"""Shipping Dockyard elsewhere: container build contexts and Kubernetes manifests.

Generators only: they read the registry and write files; nothing here talks to a cluster
or an image registry. ``manifests`` is pure; ``kubernetes`` and ``context`` write files.
"""
