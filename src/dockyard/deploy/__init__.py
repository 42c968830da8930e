"""Releases: what an endpoint serves and how it changes.

``spec`` (the deployment spec, pure), ``store`` (its revisions in the registry's database),
``service`` (:class:`~dockyard.deploy.service.Deployments`: deploy, rollback, promote,
pause/resume/abort: the one place these actions live, used by the CLI and the HTTP API),
``rollout`` (the pure rollout state machine) and ``controller`` (it driven against the
store), ``requirements`` (the gate's grammar), ``gate`` (evaluating a candidate) and
``promotion`` (moving an alias on a recorded gate result). Nothing is imported here, so
importing a submodule stays cheap.
"""
