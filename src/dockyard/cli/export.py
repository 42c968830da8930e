"""``dockyard export``: a version as one standalone ONNX file (optionally compressed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import out, print_json, size

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name@version or name@alias.")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write (model.onnx).")],
    format: Annotated[str, typer.Option("--format", help="onnx.")] = "onnx",
    quantize: Annotated[
        str | None,
        typer.Option(help="int8 (dynamic quantization) or fp16; default: no compression."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a version as a standalone ONNX file (its ref and signature in the file's
    metadata), checked on the version's reference rows: size and how far answers moved."""
    from dockyard.registry.export import export_onnx

    with open_registry(ctx) as registry:
        exported = export_onnx(registry, ref, quantization=quantize, format=format)
    partial = out_path.with_name(f".{out_path.name}.partial")
    partial.write_bytes(exported.data)
    partial.replace(out_path)
    report = {**exported.report(), "out": str(out_path)}
    if as_json:
        print_json(report)
        return
    compression = f", {quantize}" if quantize else ""
    out.print(f"wrote {out_path} ({size(len(exported.data))}{compression}) from {exported.ref}")
    ratio = report["size_ratio"]
    out.print(
        f"  size: native {size(exported.native_size)}, ONNX {size(exported.onnx_size)}"
        + (f", exported {ratio:.2f}× the ONNX graph" if quantize else "")
    )
    checked = exported.comparison
    if checked.task == "classification":
        out.print(
            f"  on {checked.rows} reference rows: {checked.label_changes} labels changed "
            f"(accuracy moves by at most {checked.accuracy_change:.2%})"
            + (
                f", probabilities by at most {checked.max_proba_diff:.3g}"
                if checked.max_proba_diff is not None
                else ""
            )
        )
    else:
        out.print(
            f"  on {checked.rows} reference rows: max error {checked.max_abs_error:.3g}, "
            f"mean {checked.mean_abs_error:.3g} ({checked.relative_error:.2e} of the largest "
            "prediction)"
        )
