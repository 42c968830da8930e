"""``dockyard models``: register, list, show, alias, tag, describe, archive."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.context import open_monitor, open_registry, parse_pairs, settings_for
from dockyard.cli.render import cell, out, print_json, size, table

if TYPE_CHECKING:
    from dockyard.registry import Model, Version

app = typer.Typer(
    help="Register models and manage their versions, aliases and tags.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, e.g. fraud.")],
    path: Annotated[
        Path,
        typer.Argument(
            help="Model file (.skops .onnx .ubj .json .txt .pt; .pkl/.joblib need --trusted, "
            "and a .pt TorchScript file whose operators are not all allow-listed) "
            "or an MLflow model directory."
        ),
    ],
    sample: Annotated[
        Path | None,
        typer.Option(help="Training sample (.parquet .csv .json .jsonl): signature, profile."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Column of the sample holding the label (left out).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Explicit semantic version, e.g. 1.4.0.")
    ] = None,
    bump: Annotated[
        str, typer.Option(help="Bump the highest version: major, minor or patch.")
    ] = "patch",
    metric: Annotated[
        list[str] | None, typer.Option(help="name=value, repeatable (e.g. --metric auc=0.94).")
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="name=value, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="name=value, repeatable.")] = None,
    alias: Annotated[
        list[str] | None, typer.Option(help="Point this alias at the new version; repeatable.")
    ] = None,
    description: Annotated[str, typer.Option(help="What changed in this version.")] = "",
    intended_use: Annotated[
        str, typer.Option(help="For the model card: what the model is for, and for whom.")
    ] = "",
    limitations: Annotated[
        str, typer.Option(help="For the model card: where it must not be used, known gaps.")
    ] = "",
    code_revision: Annotated[
        str | None, typer.Option(help="Code revision (e.g. git SHA) to record in lineage.")
    ] = None,
    trusted: Annotated[
        bool,
        typer.Option(
            "--trusted",
            help="Allow formats that can execute code when loaded (pickle, joblib, unknown "
            "types). Recorded in the audit log.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Register a model file as a new version."""
    from dockyard.errors import UnreadableFileError

    if not path.exists():
        raise UnreadableFileError(f"{path} does not exist.", hint="Check the model file's path.")
    metrics = parse_pairs(metric, "metric")
    from dockyard.cli.deployments import open_deployments

    with open_deployments(ctx) as service, out.status(f"Registering {name} from {path.name}…"):
        service.refuse_protected(name, alias or [])  # they move only with a gate
        registered = service.registry.register(
            path,
            name,
            sample=sample,
            y=target,
            version=version,
            bump=bump,  # type: ignore[arg-type]  # checked by the registry
            metrics=metrics,  # type: ignore[arg-type]  # strings, converted and checked
            params=parse_pairs(param, "param"),
            tags=parse_pairs(tag, "tag"),
            description=description,
            aliases=alias or [],
            trusted=trusted,
            code_revision=code_revision,
            intended_use=intended_use,
            limitations=limitations,
        )
    if as_json:
        print_json(registered.to_dict())
        return
    out.print(
        f"Registered [bold]{registered.ref}[/] ({registered.runtime}, {size(registered.size)}, "
        f"sha256:{registered.digest[:12]})"
        + (f" aliases: {', '.join(registered.aliases)}" if registered.aliases else "")
    )


@app.command("list")
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List models with their latest version and aliases."""
    with open_registry(ctx) as registry:
        models = registry.list_models()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        out.print("No models yet. Register one: dockyard models register NAME FILE --sample DATA")
        return
    out.print(
        table(
            None,
            ["model", "latest", "versions", "aliases", "tags", "description"],
            (_model_row(m) for m in models),
        )
    )


def _model_row(model: Model) -> list[Any]:
    aliases = ", ".join(f"{alias}→{version}" for alias, version in model.aliases.items())
    count = str(model.versions) + (f" ({model.archived} archived)" if model.archived else "")
    return [model.name, model.latest, count, aliases or None, model.tags, model.description]


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name@version or name@alias.")],
    limit: Annotated[
        int, typer.Option(min=1, help="For a model: how many of its highest versions to show.")
    ] = 50,
    show_all: Annotated[bool, typer.Option("--all", help="For a model: every version.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a model and its versions, or one version with its signature."""
    from dockyard.registry import ModelRef

    parsed = ModelRef.parse(ref)
    with open_registry(ctx) as registry:
        if parsed.version is None and parsed.alias is None:
            model = registry.get_model(parsed.name)
            versions = registry.list_versions(parsed.name, limit=None if show_all else limit)
            if as_json:
                print_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
                return
            _print_model(model, versions)
            if model.versions > len(versions):
                out.print(
                    f"… and {model.versions - len(versions):,} lower versions "
                    "(--all or --limit N to see more, --json for machines)."
                )
            return
        found = registry.get_version(ref)
        attribution = (registry.get_profile(ref) or {}).get("attribution")
    if as_json:
        print_json({**found.to_dict(), "global_importance": attribution})
        return
    _print_version(found, attribution)


def _print_model(model: Model, versions: list[Version]) -> None:
    out.print(f"[bold]{model.name}[/]" + (f" — {model.description}" if model.description else ""))
    if model.tags:
        out.print(f"tags: {cell(model.tags)}")
    out.print(
        table(
            None,
            ["version", "status", "aliases", "runtime", "size", "metrics", "registered", "by"],
            (
                [
                    v.version,
                    v.status,
                    v.aliases,
                    v.runtime + (" (trusted)" if v.trusted else ""),
                    size(v.size),
                    v.metrics,
                    v.created_at,
                    v.created_by,
                ]
                for v in versions
            ),
        )
    )


def _print_version(v: Version, attribution: Mapping[str, Any] | None = None) -> None:
    out.print(
        f"[bold]{v.ref}[/]  {v.status}"
        + (f"  aliases: {', '.join(v.aliases)}" if v.aliases else "")
    )
    facts = [
        ("runtime", v.runtime + (f" (trusted: {', '.join(v.trusted_types)})" if v.trusted else "")),
        ("artifact", f"sha256:{v.digest}  {size(v.size)}"),
        ("onnx twin", _twin(v.accelerated)),
        ("registered", f"{cell(v.created_at)} by {v.created_by}"),
        ("description", v.description or None),
        ("metrics", v.metrics),
        ("params", v.params),
        ("tags", v.tags),
        ("lineage", {k: val for k, val in v.lineage.items() if k != "data" and val is not None}),
        ("data", _fingerprint(v.lineage.get("data"))),
        ("environment", v.environment),
        ("importance", _importance_method(attribution)),
    ]
    for key, value in facts:
        out.print(f"[bold]{key:>12}[/]  {cell(value)}")
    signature = v.signature
    if not signature:
        out.print("\nNo signature (registered without a sample): inputs are not validated.")
        return
    output = signature.get("output", {})
    out.print(
        f"\n[bold]output[/]  {output.get('kind')}"
        + (f", classes {cell(output.get('classes'))}" if output.get("classes") is not None else "")
        + (", probabilities" if output.get("has_proba") else "")
        + f"   input layout: {signature.get('layout')}"
    )
    importance = (attribution or {}).get("importance") or {}
    out.print(
        table(
            "inputs",
            ["column", "type", "nullable", "range / categories", "unseen", "importance"],
            ([*_column_row(c), importance.get(c["name"])] for c in signature.get("columns", [])),
        )
    )


def _importance_method(attribution: Mapping[str, Any] | None) -> str | None:
    """How the inputs' importance (mean |attribution| over the sample) was measured."""
    if not attribution:
        return None
    return (
        f"mean |{attribution['method']}| ({attribution['space']}) over {attribution['rows']} rows"
    )


def _twin(accelerated: Mapping[str, Any] | None) -> str:
    """The ONNX twin's status: what is served instead of the native model, or why none."""
    if accelerated is None:
        return "none (not built for this version)"
    checked = accelerated.get("rows_checked")
    diff = accelerated.get("max_abs_diff")
    if "digest" not in accelerated:
        compared = f" (compared on {checked} rows, max difference {cell(diff)})" if checked else ""
        return f"none: {accelerated.get('reason') or 'no reason recorded'}{compared}"
    return (
        f"{accelerated.get('runtime', 'onnx')}, sha256:{str(accelerated['digest'])[:12]}  "
        f"{size(int(accelerated.get('size') or 0))}; predicts like the native model on "
        f"{checked} rows (max difference {cell(diff)}); served when the deployment accelerates"
    )


def _column_row(column: dict[str, Any]) -> list[Any]:
    if column.get("categories") is not None:
        cats = list(column["categories"])
        spread = ", ".join(map(str, cats[:8])) + (f" … ({len(cats)})" if len(cats) > 8 else "")
    elif column.get("minimum") is not None:
        spread = f"{cell(column['minimum'])} … {cell(column['maximum'])}"
    else:
        spread = None
    unseen = column.get("unseen") if column.get("dtype") in ("string", "category") else None
    return [
        column["name"],
        column["dtype"],
        "yes" if column.get("nullable") else "no",
        spread,
        unseen,
    ]


def _fingerprint(data: Any) -> str | None:
    if not data:
        return None
    columns = len(data.get("columns", []))
    return f"{data.get('rows')} rows × {columns} columns, sha256:{str(data.get('sha256'))[:12]}"


@app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name@version to point at (or name with --delete).")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
    gate: Annotated[
        int | None,
        typer.Option(
            "--gate",
            metavar="ID",
            help="The recorded gate result (dockyard gate's id) that justifies the move; "
            "required for a protected alias (DOCKYARD_PROTECTED_ALIASES).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (production, staging, ...) at a version, or remove it. A protected
    alias moves only with a passing gate result recorded against where it points now."""
    from dockyard.cli.deployments import open_deployments
    from dockyard.deploy.promotion import Promotion
    from dockyard.registry import ModelRef

    with open_deployments(ctx) as service:
        registry = service.registry
        if delete:
            service.remove_alias(ModelRef.parse(ref).name, alias_name)
            if as_json:
                print_json({"deleted": alias_name, "model": ModelRef.parse(ref).name})
            else:
                out.print(f"Removed alias {alias_name} from {ModelRef.parse(ref).name}")
            return
        moved = service.move_alias(
            ref, alias_name, actor=registry.actor, gate=None if gate is None else {"id": gate}
        )
    if as_json:
        print_json(moved.to_dict())
    elif isinstance(moved, Promotion) and not moved.moved:
        out.print(f"{moved.model}@{alias_name} already points at {moved.version}.")
    else:
        out.print(f"{moved.model}@{alias_name} → {moved.version}")


@app.command("tag")
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name (model tags) or name@version.")],
    pairs: Annotated[list[str] | None, typer.Argument(help="key=value pairs to set.")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Tag key to remove; repeatable.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set or remove tags on a model or a version."""
    from dockyard.errors import InvalidRequestError

    values = parse_pairs(pairs, "tag", option=False)
    if not values and not remove:
        raise InvalidRequestError("Nothing to do.", hint="Give key=value pairs or --remove KEY.")
    with open_registry(ctx) as registry:
        tags = registry.set_tags(ref, values, remove=remove or [])
    if as_json:
        print_json({"ref": ref, "tags": tags})
    else:
        out.print(f"{ref} tags: {cell(tags)}")


@app.command("describe")
def describe(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name or name@version.")],
    text: Annotated[str, typer.Argument(help="The new description.")],
) -> None:
    """Set the description of a model or a version."""
    with open_registry(ctx) as registry:
        registry.set_description(ref, text)
    out.print(f"Described {ref}")


@app.command("archive")
def archive(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name@version.")],
    restore: Annotated[
        bool, typer.Option("--restore", help="Restore an archived version.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Archive a version (kept for audit, never deleted); aliased versions are refused."""
    with open_registry(ctx) as registry:
        changed = registry.restore(ref) if restore else registry.archive(ref)
    if as_json:
        print_json(changed.to_dict())
    else:
        out.print(f"{changed.ref} is {changed.status}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name@version or name@alias.")],
    as_json: JsonOption = False,
) -> None:
    """Check a version's artifact against its digest and load it (exit 6 if corrupted)."""
    with open_registry(ctx) as registry:
        loaded = registry.load(ref)
    version = loaded.version
    if as_json:
        print_json(
            {
                "ref": version.ref,
                "digest": version.digest,
                "verified": True,
                "runtime": version.runtime,
                "metadata": loaded.model.metadata(),
            }
        )
        return
    out.print(
        f"{version.ref}: sha256:{version.digest[:12]}… verified, loads with {version.runtime}"
    )


@app.command("card")
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name@version or name@alias.")],
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    out_path: Annotated[
        Path | None, typer.Option("--out", metavar="PATH", help="Write it here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The model card: intended use, data, metrics, gates, fairness, signature, importance,
    environment, lineage, approvals and live status (HTML works offline)."""
    from dockyard.deploy.card_render import FORMATS, render_card
    from dockyard.deploy.service import Deployments

    if fmt not in FORMATS:
        from dockyard.errors import InvalidRequestError

        raise InvalidRequestError(f"Unknown format {fmt!r}.", hint="Use --format md or html.")
    with open_monitor(ctx) as monitor:
        deployments = Deployments.from_settings(monitor.registry, settings_for(ctx))
        found = deployments.card(ref, monitor)
    if as_json:
        print_json(found)
        return
    text = render_card(found, fmt)
    if out_path is None:
        sys.stdout.write(text + "\n")
        return
    out_path.write_text(text, encoding="utf-8")
    out.print(f"wrote the card of {found['ref']} to {out_path}")
