"""``dockyard deploy``, ``dockyard rollback`` and ``dockyard deployments [history|compare]``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.context import open_registry, settings_for
from dockyard.cli.render import out, print_json, table
from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    from dockyard.deploy.service import Deployments
    from dockyard.deploy.spec import DeploymentSpec

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

app = typer.Typer(
    help="List endpoints; their revision history; compare their variants and shadows.",
    invoke_without_command=True,
)


@contextmanager
def open_deployments(ctx: typer.Context, *, rollouts: bool = False) -> Iterator[Deployments]:
    """The release actions over the configured registry, with its alias policy; ``rollouts``
    adds the prediction log the rollout actions read."""
    from dockyard.deploy.service import Deployments

    settings = settings_for(ctx)
    with open_registry(ctx) as registry:
        monitoring = None
        if rollouts:
            from dockyard.server.services import monitoring_store

            monitoring = monitoring_store(settings)
        yield Deployments.from_settings(registry, settings, monitoring=monitoring)


def deploy(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name, e.g. fraud.")],
    model_ref: Annotated[
        str | None,
        typer.Argument(help="name@version or name@alias (follows the alias).", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The same as MODEL_REF, as an option.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A YAML (or JSON) deployment spec: routes, shadows…"),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most rows per model call.")] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="Extra wait for a fuller batch (0: none).")
    ] = 0.0,
    max_queue_wait_ms: Annotated[
        float,
        typer.Option(min=1, help="Longest estimated queue wait; 503 beyond."),
    ] = 1000.0,
    max_queue_rows: Annotated[
        int, typer.Option(min=1, help="Hard cap on queued rows; 503 beyond.")
    ] = 65_536,
    accelerate: Annotated[
        bool, typer.Option(help="Serve the version's verified ONNX twin when it has one.")
    ] = True,
    reason: Annotated[str, typer.Option(help="Why; recorded with the revision.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Point an endpoint at a model (or a whole spec); running servers follow within seconds."""
    from dockyard.deploy.service import single_route
    from dockyard.deploy.spec import DeploymentSpec

    ref = model_ref or model
    if (ref is None) == (file is None):
        raise InvalidRequestError(
            "Give a model reference or a spec file (-f), not both and not neither.",
            hint="dockyard deploy fraud fraud@1.3.0   or   dockyard deploy fraud -f fraud.yaml",
        )
    if file is not None:
        spec = DeploymentSpec.parse(_read_spec(file))
    else:
        assert ref is not None
        batching = {
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "max_queue_wait_ms": max_queue_wait_ms,
            "max_queue_rows": max_queue_rows,
        }
        spec = single_route(ref, batching=batching, accelerate=accelerate)
    with open_deployments(ctx) as service:
        deployment = service.deploy(endpoint, spec, actor=service.registry.actor, reason=reason)
        resolved = _resolve(service, spec)
    if as_json:
        print_json(deployment.to_dict())
        return
    out.print(
        f"Endpoint [bold]{endpoint}[/] revision {deployment.revision} → " + ", ".join(resolved)
    )


def _read_spec(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequestError(f"Cannot read {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise InvalidRequestError(f"{path} is not valid YAML: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"{path} must hold a mapping (routes, shadows, batching, monitoring...).",
            hint="See the deployment spec in the README.",
        )
    return data


def _resolve(service: Deployments, spec: DeploymentSpec) -> list[str]:
    """What each route and shadow resolves to now, for a person (raises for unknown ones)."""
    from dockyard.registry.refs import ModelRef

    shown = []
    for found in service.resolve(spec):
        if found.shadow:
            shown.append(f"{found.version} (shadow)")
            continue
        follows = (
            f" (following {found.reference})"
            if ModelRef.parse(found.reference).version is None
            else ""
        )
        share = f" {found.weight}%" if len(spec.routes) > 1 else ""
        shown.append(f"{found.version}{share}{follows}")
    return shown


@app.callback()
def deployments(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List endpoints and what they serve."""
    if ctx.invoked_subcommand is not None:
        return
    with open_deployments(ctx) as service:
        found = service.list()
        resolved: dict[str, str] = {}
        for d in found:
            try:
                resolved[d.name] = ", ".join(_resolve(service, d.spec))
            except Exception as exc:  # an alias removed since: show why
                resolved[d.name] = f"unresolvable: {exc}"
    if as_json:
        print_json([{**d.to_dict(), "resolves_to": resolved[d.name]} for d in found])
        return
    if not found:
        out.print("No endpoints. Deploy one: dockyard deploy NAME MODEL@ALIAS")
        return
    out.print(
        table(
            None,
            ["endpoint", "revision", "model", "serves", "batching", "updated", "by"],
            (
                [
                    d.name,
                    d.revision,
                    ", ".join(route.model for route in d.spec.routes),
                    resolved[d.name],
                    f"{d.spec.batching.max_batch_size} rows, {d.spec.batching.max_wait_ms} ms",
                    d.updated_at,
                    d.updated_by,
                ]
                for d in found
            ),
        )
    )


@app.command("history")
def history(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    as_json: JsonOption = False,
) -> None:
    """Every revision of an endpoint: who, when, why, and what changed."""
    with open_deployments(ctx) as service:
        rows = service.history(endpoint)
    if as_json:
        print_json(rows)
        return
    out.print(
        table(
            f"{endpoint}: {len(rows)} revision(s), newest first",
            ["revision", "when", "who", "why", "changes"],
            (
                [
                    r["revision"],
                    r["created_at"][:19],
                    r["created_by"],
                    r["reason"],
                    "\n".join(r["changes"][:12]) or "—",
                ]
                for r in rows
            ),
        )
    )


def rollback(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    to: Annotated[
        int | None, typer.Option("--to", min=1, help="Revision to restore (default: previous).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why; recorded with the new revision.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Restore an earlier revision's spec, live, at once (recorded as a new revision)."""
    with open_deployments(ctx) as service:
        deployment = service.rollback(endpoint, to=to, actor=service.registry.actor, reason=reason)
    target = deployment.revision - 2 if to is None else to  # the new revision is one past
    if as_json:
        print_json(deployment.to_dict())
        return
    out.print(
        f"Endpoint [bold]{endpoint}[/] rolled back to revision {target}'s spec "
        f"(now revision {deployment.revision}); servers switch within seconds."
    )


@app.command("compare")
def compare(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    window: Annotated[
        str, typer.Option(help="'15m', '1h', '7d' (back from now), 'last:1000' or 'all'.")
    ] = "1h",
    as_json: JsonOption = False,
) -> None:
    """Variants side by side (requests, errors, latency, accuracy with 95% intervals and a
    significance test) and each shadow's agreement with what was served."""
    from dockyard.cli.context import open_monitor

    with open_monitor(ctx) as monitor:
        result = monitor.compare(endpoint, monitor.window(window))
    if as_json:
        print_json(result)
        return
    out.print(
        table(
            f"{endpoint}: variants, {result['window']['description']}",
            [
                "version",
                "requests",
                "errors",
                "p50 ms",
                "p99 ms",
                "labelled",
                "accuracy",
                "95% interval",
                "p (vs first)",
            ],
            (
                [
                    v["version"],
                    v["requests"],
                    v["errors"],
                    v["p50_latency_ms"],
                    v["p99_latency_ms"],
                    v["labelled"],
                    v["accuracy"],
                    v["accuracy_ci"],
                    v.get("p_value"),
                ]
                for v in result["variants"]
            ),
        )
    )
    if result["shadows"]:
        out.print(
            table(
                "shadows (answers compared, never returned)",
                ["version", "mirrored", "errors", "agreement", "mean |diff|", "p50 ms", "p99 ms"],
                (
                    [
                        s["version"],
                        s["requests"],
                        s["errors"],
                        s["agreement"],
                        s["mean_abs_difference"],
                        s["p50_latency_ms"],
                        s["p99_latency_ms"],
                    ]
                    for s in result["shadows"]
                ),
            )
        )


@app.command("status")
def status(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    as_json: JsonOption = False,
) -> None:
    """An endpoint's automatic rollout: step, weights, checks and the last decision."""
    with open_deployments(ctx, rollouts=True) as service:
        result = service.rollout(endpoint)
    if as_json:
        print_json(result)
        return
    weights = ", ".join(f"{r['model']} {r['weight']}%" for r in result["routes"])
    out.print(f"[bold]{endpoint}[/] serves {weights}")
    progress = result["rollout"]
    if progress is None:
        out.print("No rollout has run on this endpoint.")
        return
    state = progress["state"]
    out.print(
        f"rollout of {progress['candidate']} over {progress['baseline']}: "
        f"[bold]{state['status']}[/] at step {state['step'] + 1}"
        + (f" — {state['reason']}" if state["reason"] else "")
    )
    decision = progress["last_decision"]
    if decision:
        out.print(f"last analysis: {decision['action']} — {decision['reason']}")
        out.print(
            table(
                None,
                ["check", "passed", "value", "limit", "detail"],
                (
                    [c["name"], c["passed"], c["value"], c["limit"], c["detail"]]
                    for c in decision["checks"]
                ),
            )
        )


def _operate(ctx: typer.Context, endpoint: str, action: str, reason: str, as_json: bool) -> None:
    with open_deployments(ctx, rollouts=True) as service:
        act = {"pause": service.pause, "resume": service.resume, "abort": service.abort}[action]
        result = act(endpoint, actor=service.registry.actor, reason=reason)
    if as_json:
        print_json(result)
        return
    out.print(f"Rollout of [bold]{endpoint}[/]: {result['rollout']['state']['status']}.")


ReasonOption = Annotated[str, typer.Option(help="Why; recorded in the audit log.")]


@app.command("pause")
def pause(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Hold an automatic rollout at its current step (no advance, no automatic rollback)."""
    _operate(ctx, endpoint, "pause", reason, as_json)


@app.command("resume")
def resume(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Resume a paused rollout (its step's minimum duration starts again)."""
    _operate(ctx, endpoint, "resume", reason, as_json)


@app.command("abort")
def abort(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Stop a rollout and give the baseline all traffic again."""
    _operate(ctx, endpoint, "abort", reason, as_json)
