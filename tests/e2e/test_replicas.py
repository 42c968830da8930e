"""Three ``dockyard serve`` replicas on one PostgreSQL database and one S3-compatible store
(moto), behind HAProxy on loopback, under continuous load, in one cluster for every scenario
(started once: a replica set takes a while on two cores):

- a new version deployed and a rollback drop no request, and every replica follows within
  two poll intervals plus the time it took to load and warm the new revision. Measured from
  just before the deploy's commit to the last probe (asked of each replica directly) that
  still saw the old version; the load + warm time is the replica's own
  ``dockyard_model_load_seconds`` for that revision, because a replica keeps answering with
  the old revision until the new one is warm, so polling alone cannot bound it;
- a canary rollout with short steps completes with no failed request, and its audit trail
  shows each step once although all three replicas run the controller (each decision is a
  compare-and-set on the shared ``rollouts`` row);
- a replica SIGKILLed mid-load is routed around while the others keep serving, and its
  prediction log loses at most its unflushed buffer: every request a survivor answered is in
  the shared log (S3) once they flushed, and the missing ones all belong to the killed
  replica and were answered in its last flush interval (plus the write in flight);
- an alert rule that every replica evaluates fires once, not three times.

The load is bounded: a few client threads, each request with a timeout and its own request
id, stopped at the end and capped in count (:data:`MAX_REQUESTS`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from _balancer import Balancer
from _server import ServerProcess, free_port
from dockyard.monitoring.predictions import TABULATE_INTERVAL_S
from dockyard.registry import Registry
from dockyard.settings import Settings

# one cluster for every scenario: longer than the suite's per-test limit on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres, pytest.mark.timeout(600)]

POLL_S = 1.0
MONITOR_S = 2.0
"""Monitor passes (alerts, rollout steps): each flushes the log and reads it back from S3, so
passes and flushes are kept few enough that a pass stays short on a busy machine."""
FLUSH_S = 3.0
CLIENTS = 2
MAX_REQUESTS = 40_000
IN_FLIGHT_WRITE_S = 2.0
"""A flush already writing to S3 when the process dies loses its rows too: its duration, at
most, on this shared machine."""
LOSS_WINDOW_S = FLUSH_S + TABULATE_INTERVAL_S + IN_FLIGHT_WRITE_S
"""How long before a SIGKILL an answered request may still be only in the buffer."""

PASSES_S = 240
"""Bound on what needs monitor passes (the alert, the rollout's steps): a pass reads the log
from S3, and many passes on three replicas share two cores with the load."""
MONITORING = {
    "alerts": [{"name": "traffic", "metric": "p99_latency_ms", "threshold": 0, "min_rows": 10}]
}
"""An alert rule that fires as soon as ten predictions are logged."""
ROLLOUT_STEPS = [
    {"weight": 25, "min_duration_s": 1, "min_requests": 20},
    {"weight": 50, "min_duration_s": 1, "min_requests": 20},
    {"weight": 100, "min_duration_s": 0, "min_requests": 0},
]


def _spec(ref: str, rollout: dict[str, Any] | None = None) -> Any:
    from dockyard.deploy.spec import DeploymentSpec

    body: dict[str, Any] = {"routes": [{"model": ref}], "monitoring": MONITORING}
    if rollout is not None:
        body["rollout"] = rollout
    return DeploymentSpec.parse(body)


def _firings(settings: Settings) -> int:
    with Registry.open(settings) as registry:
        return len(registry.events(action="alert.firing"))


@dataclass
class Answer:
    at: float
    status: int
    served: str
    """The version that answered, or the error."""
    request_id: str
    replica: str
    """HAProxy's name for the replica that answered (``r0``...), ``""`` when none did."""


@dataclass
class Load:
    """Client threads posting predictions to the balancer until stopped."""

    url: str
    body: dict[str, Any]
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set() and len(self.answers) < MAX_REQUESTS:
                request_id = ""
                try:
                    reply = client.post("/v1/endpoints/cancer/predict", json=self.body)
                    request_id = reply.headers.get("x-request-id", "")
                    served = reply.json().get("version", reply.text[:200])
                    replica = reply.headers.get("x-replica", "")
                    self.answers.append(
                        Answer(time.monotonic(), reply.status_code, served, request_id, replica)
                    )
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(time.monotonic(), 0, repr(exc), request_id, ""))

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def failures(self, since: float = 0.0) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= since and a.status != 200]

    def wait_for(self, count: int, since: float) -> None:
        """Until ``count`` more answers arrived after ``since`` (bounded)."""
        deadline = time.monotonic() + 120
        while sum(1 for a in list(self.answers) if a.at >= since) < count:
            assert time.monotonic() < deadline, "the load stalled"
            assert len(self.answers) < MAX_REQUESTS, "the load cap was reached"
            time.sleep(0.05)


@pytest.fixture
def shared(
    tmp_path: Path, postgres_url: str, s3_bucket: tuple[str, dict[str, object]]
) -> tuple[Settings, dict[str, str], Any]:
    """A registry on PostgreSQL + S3 with two versions of the cancer pipeline, the
    endpoint on the first; the replicas' environment; and the rows to send."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dockyard.deploy.service import Deployments

    url, options = s3_bucket
    monitoring = url.replace("/artifacts", "/monitoring")
    settings = Settings(
        home=tmp_path / "cli",
        database_url=postgres_url,
        artifact_url=url,
        artifact_options=options,
        monitoring_url=monitoring,
        monitoring_options=options,
        user="tester",
    )
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    with Registry.open(settings) as registry:
        for c in (0.1, 1.0):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
            registry.register(model.fit(X, y), "cancer", sample=X, y=y)
        Deployments(registry).deploy("cancer", _spec("cancer@1.0.0"), actor="tester")
    env = {
        "DOCKYARD_DATABASE_URL": postgres_url,
        "DOCKYARD_ARTIFACT_URL": url,
        "DOCKYARD_ARTIFACT_OPTIONS": json.dumps(options),
        "DOCKYARD_MONITORING_URL": monitoring,
        "DOCKYARD_MONITORING_OPTIONS": json.dumps(options),
        "DOCKYARD_POLL_INTERVAL_S": str(POLL_S),
        "DOCKYARD_MONITOR_INTERVAL_S": str(MONITOR_S),
        "DOCKYARD_LOG_FLUSH_INTERVAL_S": str(FLUSH_S),
    }
    return settings, env, X.iloc[:3].to_dict(orient="records")


def _served_by(replica: ServerProcess, body: dict[str, Any]) -> str | None:
    try:
        reply = httpx.post(f"{replica.url}/v1/endpoints/cancer/predict", json=body, timeout=5)
    except httpx.HTTPError:
        return None
    return str(reply.json().get("version")) if reply.status_code == 200 else None


def _load_seconds(replica: ServerProcess) -> float:
    """The replica's total time spent loading and warming the endpoint's revisions."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{replica.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "dockyard_model_load_seconds"
        for sample in family.samples
        if sample.name.endswith("_sum") and sample.labels.get("endpoint") == "cancer"
    )


def _change_and_converge(
    replicas: list[ServerProcess], body: dict[str, Any], version: str, change: Any
) -> list[tuple[float, float, float]]:
    """Apply ``change`` (a deploy or a rollback) and wait until every replica, asked
    directly, answers ``version``. Per replica: (seconds from just before the commit to the
    last probe that still saw the old version, to the first that saw the new one, and the
    replica's load + warm time for the new revision)."""
    loaded = [_load_seconds(replica) for replica in replicas]
    last_old = [0.0] * len(replicas)
    first_new = [0.0] * len(replicas)
    start = time.monotonic()
    change()
    waiting = set(range(len(replicas)))
    while waiting:
        for i in sorted(waiting):
            sent = time.monotonic() - start
            if _served_by(replicas[i], body) == version:
                first_new[i] = time.monotonic() - start
                waiting.discard(i)
            else:
                last_old[i] = sent
        assert time.monotonic() - start < 60, f"replicas {waiting} still not on {version}"
        time.sleep(0.02)
    warm = [_load_seconds(r) - before for r, before in zip(replicas, loaded, strict=True)]
    return list(zip(last_old, first_new, warm, strict=True))


def _assert_converged(timings: list[tuple[float, float, float]]) -> None:
    for replica, (last_old, _first_new, warm) in enumerate(timings):
        assert warm > 0, f"replica {replica} loaded nothing"
        assert last_old <= 2 * POLL_S + warm, (replica, timings)


def _rollout_steps(settings: Settings) -> list[tuple[str, int | None]]:
    """The rollout's audit trail for the endpoint, oldest first: (action, weight)."""
    with Registry.open(settings) as registry:
        events = registry.events(limit=1000)
    return [
        (e.action, e.details.get("weight"))
        for e in reversed(events)
        if e.action.startswith("rollout.") and e.details.get("deployment") == "cancer"
    ]


def _rollout(settings: Settings, load: Load) -> tuple[int, list[Answer]]:
    """Canary 1.0.1 over 1.0.0 in short steps, under the load, to completion; returns the
    seconds it took and the answers meanwhile."""
    from dockyard.deploy.service import Deployments

    plan = {
        "candidate": "cancer@1.0.1",
        "steps": ROLLOUT_STEPS,
        # latency and accuracy are not under test here (and a shared machine's p99 is noise)
        "checks": {"max_p99_latency_ratio": None, "max_accuracy_drop": None},
    }
    started = time.monotonic()
    with Registry.open(settings) as registry:
        Deployments(registry).deploy("cancer", _spec("cancer@1.0.0", plan), actor="tester")
    deadline = started + PASSES_S
    while not _rollout_steps(settings) or _rollout_steps(settings)[-1][0] != "rollout.completed":
        assert time.monotonic() < deadline, (
            f"the rollout did not finish: {_rollout_steps(settings)}"
        )
        assert not load.failures(since=started), load.failures(since=started)[:5]
        time.sleep(0.2)
    return round(time.monotonic() - started), [a for a in list(load.answers) if a.at >= started]


def _logged(settings: Settings, request_ids: set[str]) -> set[str]:
    from dockyard.monitoring.store import MonitoringStore

    store = MonitoringStore(settings.resolved_monitoring_url, settings.monitoring_options)
    return store.known_request_ids("cancer", sorted(request_ids))


def _wait_logged(settings: Settings, answers: dict[str, Answer], killed: float) -> set[str]:
    """Polls until ``answers`` are all in the shared prediction log (the survivors flush
    every ``FLUSH_S`` and before each monitor pass); returns their ids."""
    deadline = time.monotonic() + 60
    while (logged := _logged(settings, set(answers))) != set(answers):
        missing = [answers[i] for i in sorted(set(answers) - logged)]
        assert time.monotonic() < deadline, [
            (a.request_id, a.replica, a.served, round(a.at - killed, 2)) for a in missing[:10]
        ]
        time.sleep(0.5)
    return logged


def test_replicas_behind_haproxy_deploy_roll_out_roll_back_and_lose_one(
    tmp_path: Path, shared: tuple[Settings, dict[str, str], Any], start_server: Any
) -> None:
    from dockyard.deploy.service import Deployments

    settings, env, rows = shared
    body = {"instances": rows}
    homes = [tmp_path / f"replica-{i}" for i in range(3)]
    for home in homes:
        home.mkdir()
    replicas = [start_server(home, env=env) for home in homes]
    for replica in replicas:
        replica.wait_ready()
    balancer = Balancer(tmp_path, free_port(), [r.port for r in replicas])

    def deploy(ref: str) -> Any:
        registry = Registry.open(settings)  # opened before the clock starts

        def change() -> None:
            with registry:
                Deployments(registry).deploy("cancer", _spec(ref), actor="tester")

        return change

    def rollback() -> None:
        with Registry.open(settings) as registry:
            Deployments(registry).rollback("cancer", actor="tester", reason="test")

    try:
        _change_and_converge(replicas, body, "1.0.0", lambda: None)
        with Load(balancer.url, body) as load:
            load.wait_for(50, since=0.0)

            # a canary rollout first, while the log is short (each monitor pass reads it)
            took, during = _rollout(settings, load)
            assert [a for a in during if a.status != 200] == []
            assert {a.served for a in during} == {"1.0.0", "1.0.1"}
            assert _rollout_steps(settings) == [
                ("rollout.started", 25),
                ("rollout.advanced", 50),
                ("rollout.advanced", 100),
                ("rollout.completed", None),
            ]
            # every replica evaluates the rule each pass
            deadline = time.monotonic() + PASSES_S
            while _firings(settings) == 0:
                assert time.monotonic() < deadline, "the alert never fired"
                time.sleep(0.2)
            _change_and_converge(replicas, body, "1.0.1", lambda: None)

            # a version deployed, while loaded, and rolled back
            forward = _change_and_converge(replicas, body, "1.0.0", deploy("cancer@1.0.0"))
            load.wait_for(50, since=time.monotonic())
            back = _change_and_converge(replicas, body, "1.0.1", rollback)
            load.wait_for(50, since=time.monotonic())
            assert load.failures() == []
            assert {a.served for a in load.answers} == {"1.0.0", "1.0.1"}

            killed = time.monotonic()
            replicas[0].process.send_signal(signal.SIGKILL)
            replicas[0].process.wait(timeout=10)
            load.wait_for(300, since=killed)
            after_kill = load.failures(since=killed)
            served_after = sum(1 for a in load.answers if a.at >= killed and a.status == 200)
        # the balancer retries a refused or dropped connection on another replica: a request
        # in flight on the killed one is answered by a survivor, not lost
        assert after_kill == [], after_kill[:5]
        assert served_after >= 300
        for survivor in replicas[1:]:
            assert _served_by(survivor, body) == "1.0.1"
        # seconds of monitor passes on three replicas since it fired: claimed once
        assert _firings(settings) == 1

        # the prediction log: every survivor's answer is there; the killed one lost at most
        # what it answered in its last flush interval
        answered = [a for a in load.answers if a.status == 200]
        assert {a.replica for a in answered} == {"r0", "r1", "r2"}
        survivors = {a.request_id: a for a in answered if a.replica != "r0"}
        by_killed = {a.request_id: a for a in answered if a.replica == "r0"}
        logged = _wait_logged(settings, survivors, killed) | _logged(settings, set(by_killed))
        missing = [by_killed[i] for i in sorted(set(by_killed) - logged)]
        assert len(missing) <= settings.log_buffer_rows
        assert all(a.at >= killed - LOSS_WINDOW_S for a in missing), sorted(
            killed - a.at for a in missing
        )[-5:]
        _assert_converged(forward)
        _assert_converged(back)
        print(  # the measured figures, in the test's output (-s): a report, not a target
            f"\nconvergence (last old probe, first new probe, load+warm) per replica, s: "
            f"deploy {[tuple(round(x, 2) for x in t) for t in forward]}, "
            f"rollback {[tuple(round(x, 2) for x in t) for t in back]} "
            f"(poll interval {POLL_S}s); rollout of {len(ROLLOUT_STEPS)} steps in {took}s; "
            f"killed replica lost {len(missing)} of its {len(by_killed)} answers; "
            f"{len(load.answers)} requests, none failed"
        )
    finally:
        balancer.stop()
