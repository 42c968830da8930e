"""A model card (:func:`dockyard.deploy.card.model_card`) as Markdown or as one offline HTML
page: both drawn from one list of sections, so they say the same things. The HTML has its
style inline and loads nothing."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("md", "html")


@dataclass(frozen=True)
class _Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


Block = str | _Table
"""A paragraph or a table."""


def render_card(card: Mapping[str, Any], fmt: str) -> str:
    """``card`` as ``md`` or ``html``."""
    sections = _sections(card)
    title = f"Model card: {card['ref']}"
    if fmt == "html":
        return _html(title, sections)
    return _markdown(title, sections)


def _sections(card: Mapping[str, Any]) -> list[tuple[str, list[Block]]]:
    aliases = ", ".join(card["aliases"]) or "none"
    registered = card["registered"]
    summary = [
        f"{card['runtime']} model, {card['status']}; aliases: {aliases}. Registered "
        f"{registered['at']} by {registered['by']}.",
    ]
    if card.get("description"):
        summary.append(str(card["description"]))
    sections: list[tuple[str, list[Block]]] = [("Summary", list(summary))]
    sections.append(("Intended use", [card.get("intended_use") or "Not stated."]))
    sections.append(("Limitations", [card.get("limitations") or "Not stated."]))
    data = card.get("data") or {}
    sections.append(
        (
            "Training data",
            [_pairs(data)] if data else ["No sample was given at registration."],
        )
    )
    sections.append(("Metrics", [_pairs(card["metrics"])] if card["metrics"] else ["None."]))
    sections.append(("Evaluations (gates)", _gates(card["gates"])))
    fairness = [g for g in card["gates"] if g.get("fairness")]
    sections.append(("Fairness", _fairness(fairness) if fairness else ["No fairness results."]))
    sections.append(("Signature", _signature(card.get("signature"))))
    sections.append(("Global importance", _importance(card.get("importance"))))
    sections.append(("Environment", [_pairs(card["environment"])]))
    sections.append(("Lineage", [_pairs({k: v for k, v in card["lineage"].items() if v})]))
    sections.append(("Approvals", _approvals(card["approvals"])))
    sections.append(("Live status", _live(card["live"])))
    return sections


def _pairs(values: Mapping[str, Any]) -> _Table:
    return _Table(["", ""], [[key, value] for key, value in values.items()])


def _gates(gates: Sequence[Mapping[str, Any]]) -> list[Block]:
    if not gates:
        return ["No gate evaluated this version."]
    blocks: list[Block] = []
    for gate in gates:
        verdict = "passed" if gate["passed"] else "failed"
        against = gate.get("baseline") or "no baseline"
        blocks.append(
            f"Gate #{gate['id']} ({gate['at']}, by {gate['by']}) against {against} on "
            f"{gate.get('rows')} rows: {verdict}."
        )
        if gate["requirements"]:
            blocks.append(
                _Table(
                    ["requirement", "candidate", "baseline", "threshold", "passed"],
                    [
                        [
                            r["requirement"],
                            r["candidate"],
                            r["baseline"],
                            r["threshold"],
                            r["passed"],
                        ]
                        for r in gate["requirements"]
                    ],
                )
            )
    return blocks


def _fairness(gates: Sequence[Mapping[str, Any]]) -> list[Block]:
    blocks: list[Block] = []
    for gate in gates:
        for column, found in gate["fairness"].items():
            blocks.append(f"Gate #{gate['id']}, by {column}:")
            figures = found.get("candidate") or {}
            groups = figures.get("groups") or {}
            names = ["selection_rate", "accuracy", "tpr", "fpr", "count"]
            blocks.append(
                _Table(
                    ["group", *names],
                    [[group, *(values.get(n) for n in names)] for group, values in groups.items()],
                )
            )
            blocks.append(_pairs(figures.get("summary") or {}))
    return blocks


def _signature(signature: Mapping[str, Any] | None) -> list[Block]:
    if not signature:
        return ["No signature: inputs are not validated."]
    output = signature.get("output") or {}
    classes = output.get("classes")
    text = f"Output: {output.get('kind')}" + (f", classes {classes}" if classes else "") + "."
    columns = signature.get("columns") or []
    return [
        text,
        _Table(
            ["column", "type", "nullable"],
            [[c["name"], c["dtype"], "yes" if c.get("nullable") else "no"] for c in columns],
        ),
    ]


def _importance(found: Mapping[str, Any] | None) -> list[Block]:
    if not found:
        return ["Not computed (no sample, or no exact explanation method for this model)."]
    ranked = sorted(found["importance"].items(), key=lambda item: -item[1])
    return [
        f"Mean |attribution| over {found['rows']} sample rows ({found['method']}, "
        f"{found['space']}).",
        _Table(["column", "mean |attribution|"], ranked),
    ]


def _approvals(approvals: Sequence[Mapping[str, Any]]) -> list[Block]:
    if not approvals:
        return ["No alias has pointed at this version."]
    return [
        _Table(
            ["at", "by", "alias", "previous", "gate", "gate passed", "requirements"],
            [
                [
                    a["at"],
                    a["by"],
                    a["alias"],
                    a["previous"],
                    a["gate"],
                    a["gate_passed"],
                    "; ".join(a["requirements"]),
                ]
                for a in approvals
            ],
        )
    ]


def _live(live: Sequence[Mapping[str, Any]]) -> list[Block]:
    if not live:
        return ["Not served by any endpoint."]
    rows = []
    for entry in live:
        drift = entry.get("drift")
        performance = entry.get("performance")
        rows.append([entry["endpoint"], entry["role"], entry["weight"], drift, performance])
    return [_Table(["endpoint", "role", "weight %", "drift", "performance"], rows)]


# --- output -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    return str(value)


def _markdown(title: str, sections: list[tuple[str, list[Block]]]) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, str):
                lines += [block, ""]
                continue
            cells = [[_text(c).replace("|", "\\|") for c in row] for row in block.rows]
            lines.append("| " + " | ".join(block.columns) + " |")
            lines.append("|" + "---|" * len(block.columns))
            lines += ["| " + " | ".join(row) + " |" for row in cells]
            lines.append("")
    return "\n".join(lines)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#1b1f24}table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid "
    "#d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}h2{border-bottom:1px "
    "solid #d0d7de;padding-bottom:.2rem}"
)


def _html(title: str, sections: list[tuple[str, list[Block]]]) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for heading, blocks in sections:
        slug = heading.lower().split(" ")[0]
        parts.append(f'<section id="{e(slug)}"><h2>{e(heading)}</h2>')
        for block in blocks:
            if isinstance(block, str):
                parts.append(f"<p>{e(block)}</p>")
                continue
            head = "".join(f"<th>{e(c)}</th>" for c in block.columns if c)
            parts.append("<table>" + (f"<tr>{head}</tr>" if head else ""))
            for row in block.rows:
                parts.append("<tr>" + "".join(f"<td>{e(_text(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
