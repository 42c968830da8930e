"""The model manager: makes the server follow the registry.

Every ``poll_interval_s`` it reads the deployments and resolves each route (an alias may
have moved). When what an endpoint should serve changed, the new versions are loaded and
warmed on a loader thread while the old ones keep answering; then the endpoint is swapped
in one assignment on the event loop, and the old one drains (its queued and running
batches finish) before it is dropped. A version that fails to load leaves the old one
serving; the reason is kept for ``/readyz?verbose`` and the control plane.

A revision this version of Dockyard cannot read (written by a newer one: a rolling
upgrade, a rollback of the binary) is such a failure too, never a reason to stop: what the
endpoint serves keeps serving, and the revision is tried again when the stored one changes.
Keys it does not know are left out of a revision it otherwise reads, with one warning per
revision (the store reads tolerantly; users' specs stay strict).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.deploy.spec import Deployment
from dockyard.serving.batching import BatchPolicy
from dockyard.serving.endpoint import Endpoint, LiveModel
from dockyard.serving.memory import release_free_memory
from dockyard.serving.ranges import Ranges

if TYPE_CHECKING:
    from dockyard.deploy.store import DeploymentStore, Unreadable
    from dockyard.registry import Registry, Version
    from dockyard.runtimes import LoadedModel

log = logging.getLogger("dockyard.serving")


@dataclass
class LoadFailure:
    """Why an endpoint's wanted state could not be loaded."""

    endpoint: str
    wanted: tuple[int, tuple[str, ...]]
    reason: str
    at: float = field(default_factory=time.time)


class ModelManager:
    """Goal state (the registry's deployments) versus observed state (loaded endpoints)."""

    def __init__(
        self,
        registry: Registry,
        deployments: DeploymentStore,
        *,
        executor: Executor,
        poll_interval_s: float = 2.0,
        on_batch: Any = None,
        on_load: Any = None,
        model_threads: int | None = None,
        inline_budget_s: float = 0.0,
    ) -> None:
        from dockyard.runtimes.onnx import OnnxRuntime

        self.registry = registry
        self.onnx = OnnxRuntime(intra_op_threads=model_threads)
        self.deployments = deployments
        self.executor = executor
        self.inline_budget_s = inline_budget_s
        self.poll_interval_s = poll_interval_s
        self.on_batch = on_batch
        self.on_load = on_load
        self.endpoints: dict[str, Endpoint] = {}
        self.failures: dict[str, LoadFailure] = {}
        self.wanted: set[str] = set()
        self.ignored: dict[str, tuple[int, tuple[str, ...]]] = {}
        """Per endpoint, the revision last read and the stored keys it left out."""
        self.started = False  # the startup pass is over: the server is ready (/readyz)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-loader")
        self._retiring: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()

    async def start(self) -> None:
        """Load everything deployed, then keep following the registry in the background."""
        await self.refresh()
        self.started = True
        self._task = asyncio.create_task(self._follow(), name="dockyard-follow-registry")

    async def stop(self) -> None:
        """Stop following; drain and close every endpoint."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for endpoint in list(self.endpoints.values()):
            await endpoint.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self._loader.shutdown(wait=False, cancel_futures=True)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.refresh()
            except Exception:  # the database may be briefly away: keep serving, retry
                log.exception("could not refresh deployments from the registry")

    def refresh_soon(self) -> None:
        """Refresh now in the background (after a deployment changed through this server)."""
        task = asyncio.get_running_loop().create_task(self.refresh())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def refresh(self) -> None:
        """Bring loaded endpoints in line with the registry; swap what changed."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(self._loader, self._plan)
        self.wanted = {deployment.name for deployment, _ in plan}
        swapped = False
        for deployment, resolved in plan:
            if not isinstance(deployment, Deployment):
                self._unreadable(deployment)
                continue
            self._note_ignored(deployment)
            if isinstance(resolved, Exception):
                self._fail(deployment.name, (deployment.revision, ()), resolved)
                continue
            wanted = (deployment.revision, tuple(version.ref for version, _ in resolved))
            current = self.endpoints.get(deployment.name)
            if current is not None and current.key == wanted:
                continue
            failure = self.failures.get(deployment.name)
            if failure is not None and failure.wanted == wanted:
                continue  # already failed on exactly this; wait for the registry to change
            try:
                endpoint = await loop.run_in_executor(
                    self._loader, self._build, deployment, resolved
                )
            except Exception as exc:
                self._fail(deployment.name, wanted, exc)
                continue
            self.endpoints[deployment.name] = endpoint  # the swap: one assignment
            swapped = True
            gc.freeze()  # the new models live long: keep them out of full collections
            self.failures.pop(deployment.name, None)
            log.info(
                "endpoint %s now serves %s",
                deployment.name,
                ", ".join(m.describe() for m in endpoint.models),
            )
            if current is not None:
                task = asyncio.create_task(current.close())
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        if swapped:  # what loading freed (the models' bytes, their parse) back to the system
            await loop.run_in_executor(self._loader, release_free_memory)

    def _fail(self, name: str, wanted: tuple[int, tuple[str, ...]], exc: Exception) -> None:
        reason = str(exc) or type(exc).__name__
        self.failures[name] = LoadFailure(name, wanted, reason)
        serving = self.endpoints.get(name)
        log.error(
            "endpoint %s: could not load %s: %s%s",
            name,
            ", ".join(wanted[1]) or f"revision {wanted[0]}",
            reason,
            f" (still serving {', '.join(serving.key[1])})" if serving else "",
        )
        if self.on_load is not None:
            self.on_load(name, None, ok=False)

    def _unreadable(self, found: Unreadable) -> None:
        """A revision this version cannot read: a load failure (once per revision), the
        endpoint keeps what it serves."""
        failure = self.failures.get(found.name)
        if failure is None or failure.wanted != (found.revision, ()):
            self._fail(found.name, (found.revision, ()), found.error)

    def _note_ignored(self, deployment: Deployment) -> None:
        """Warn once per revision about stored keys this version left out."""
        noted = (deployment.revision, deployment.ignored)
        if self.ignored.get(deployment.name, (None, ()))[0] == deployment.revision:
            return
        if deployment.ignored:
            log.warning(
                "endpoint %s, revision %d: left out keys this version of Dockyard does not "
                "know (written by a newer one?): %s",
                deployment.name,
                deployment.revision,
                ", ".join(deployment.ignored),
            )
        self.ignored[deployment.name] = noted

    def _plan(self) -> list[tuple[Deployment | Unreadable, Any]]:
        """Each deployment with its routes and shadows resolved to versions (or the error);
        one this version cannot read as it is."""
        plan: list[tuple[Deployment | Unreadable, Any]] = []
        for deployment in self.deployments.scan():
            if not isinstance(deployment, Deployment):
                plan.append((deployment, None))
                continue
            spec = deployment.spec
            try:
                resolved = [
                    (self.registry.get_version(route.model), float(route.weight))
                    for route in spec.routes
                ] + [
                    (self.registry.get_version(shadow.model), -shadow.sample_rate)
                    for shadow in spec.shadows
                ]
            except Exception as exc:
                plan.append((deployment, exc))
                continue
            plan.append((deployment, resolved))
        return plan

    def _build(self, deployment: Deployment, resolved: list[tuple[Version, float]]) -> Endpoint:
        """Load and warm every route's and shadow's version (on the loader thread). Shadows
        come as negative weights: their sample rate."""
        batching = deployment.spec.batching
        policy = BatchPolicy(
            max_batch_size=batching.max_batch_size,
            max_wait_ms=batching.max_wait_ms,
            max_queue_wait_ms=batching.max_queue_wait_ms,
            max_queue_rows=batching.max_queue_rows,
        )
        routes: list[tuple[LiveModel, int]] = []
        shadows: list[tuple[LiveModel, float]] = []
        for version, weight in resolved:
            started = time.perf_counter()
            predictor, accelerated = self._load(version, accelerate=deployment.spec.accelerate)
            model = LiveModel(
                version,
                predictor,
                accelerated=accelerated,
                policy=policy,
                executor=self.executor,
                inline_budget_s=self.inline_budget_s,
                on_batch=(
                    (lambda rows, requests, name=deployment.name: self.on_batch(name, rows))
                    if self.on_batch is not None
                    else None
                ),
            )
            monitoring = deployment.spec.monitoring
            role = "shadow" if weight < 0 else "primary"
            if monitoring.log or role == "shadow":  # shadows are only useful compared
                model.log_source = model.source_for(
                    deployment.name, deployment.revision, monitoring.sample_rate, role
                )
            profile = self.registry.get_profile(version.ref) or {}
            model.ranges = Ranges.from_profile(model.signature, profile)
            model.warm(profile.get("examples") or [])
            if self.on_load is not None:
                self.on_load(deployment.name, time.perf_counter() - started, ok=True)
            if weight < 0:
                shadows.append((model, -weight))
            else:
                routes.append((model, int(weight)))
        return Endpoint(deployment, routes, shadows)

    def _load(self, version: Version, *, accelerate: bool) -> tuple[LoadedModel, bool]:
        twin = version.accelerated or {}
        if accelerate and twin.get("digest"):
            data = self.registry.artifacts.get(str(twin["digest"]))  # digest verified
            return self.onnx.load(data, {}), True
        if version.runtime == "onnx":
            return self.onnx.load(self.registry.artifacts.get(version.digest), {}), False
        return self.registry.load(version.ref).model, False
