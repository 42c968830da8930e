"""The audit trail's hash chain: each event carries the hash of the one before it.

The database refuses UPDATE, DELETE, REPLACE and (on PostgreSQL) TRUNCATE on ``events``, but
its owner can drop those triggers. The chain makes what they do afterwards visible::

    hash = sha256(prev_hash + "\\n" + canonical(event))

where the first event's ``prev_hash`` is :data:`GENESIS` and ``canonical`` is the event's
content (``at actor action model version before after details``; not its id) as compact JSON
with sorted keys, ASCII only, integral numbers written as integers (so a value reads back
the same from SQLite's JSON text and PostgreSQL's JSONB). The store computes it at insert,
in the writing transaction, with the database's write lock held, so concurrent writers
extend one chain.

:func:`verify_chain` walks the events in id order and names each event where the chain
breaks:

- ``edited``: the event's content no longer matches its own hash;
- ``missing``: the event it was chained to is not in the log (deleted, or rewritten with a
  recomputed hash);
- ``reordered``: it was chained to an event that is somewhere else in the log (ids moved,
  or an event inserted out of the chain).

A chain alone cannot show what its owner rewrote whole (every hash from an event on
recomputed) or cut back (the newest events deleted): keep :attr:`ChainReport.head` somewhere
the database's owner cannot write, and pass it back as an anchor later.

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "GENESIS",
    "ChainBreak",
    "ChainReport",
    "ChainedEvent",
    "canonical",
    "chain_hash",
    "normalize",
    "storable",
    "verify_chain",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

BreakKind = Literal["edited", "missing", "reordered"]


def normalize(value: Any, *, integral_floats: bool = False) -> Any:
    """``value`` as it reads back from either database's JSON column: JSON types only,
    string keys, NaN and infinities as ``None`` (JSONB has none), and integral floats as
    ints (JSONB may give ``1e20`` back as an integer) unless ``integral_floats``."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and not integral_floats else value
    if isinstance(value, Mapping):
        return {str(k): normalize(v, integral_floats=integral_floats) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(item, integral_floats=integral_floats) for item in value]
    return normalize(json.loads(json.dumps(value, default=str)), integral_floats=integral_floats)


def storable(value: Any) -> Any:
    """``value`` made safe for both databases' JSON columns (NaN and infinities as ``None``),
    floats kept as floats."""
    return normalize(value, integral_floats=True)


def _timestamp(at: datetime) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(
    *,
    at: datetime,
    actor: str,
    action: str,
    model: str | None,
    version: str | None,
    before: Any,
    after: Any,
    details: Any,
) -> str:
    """The text an event's hash covers."""
    body = {
        "at": _timestamp(at),
        "actor": actor,
        "action": action,
        "model": model,
        "version": version,
        "before": normalize(before),
        "after": normalize(after),
        "details": normalize(details),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: str, text: str) -> str:
    """``sha256(prev_hash + "\\n" + text)`` in hex."""
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainedEvent:
    """What verification needs of one stored event: its id, its links and its content."""

    id: int
    prev_hash: str | None
    hash: str | None
    text: str
    """:func:`canonical` of the stored content."""


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain breaks and what is wrong there."""

    event: int
    kind: BreakKind
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify_chain` (plus the database's guards, from the store)."""

    events: int
    head: int | None
    head_hash: str | None
    breaks: tuple[ChainBreak, ...] = ()
    missing_guards: tuple[str, ...] = ()
    """Append-only triggers that are gone or disabled."""

    @property
    def intact(self) -> bool:
        """No break in the chain (missing guards are reported, not a break)."""
        return not self.breaks

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "events": self.events,
            "head": {"id": self.head, "hash": self.head_hash},
            "breaks": [b.to_dict() for b in self.breaks],
            "missing_guards": list(self.missing_guards),
        }


def verify_chain(
    events: Iterable[ChainedEvent], anchors: Mapping[int, str] | None = None
) -> ChainReport:
    """Walk ``events`` (in id order) and report every event where the chain breaks.

    ``anchors`` maps event ids to the hashes an earlier verification reported for them (its
    head, kept outside the database): each must still be there with that hash, which is what
    catches a log cut back, or rewritten from an event on with every later hash recomputed."""
    rows = list(events)
    position = {row.hash: i for i, row in enumerate(rows) if row.hash is not None}
    breaks: list[ChainBreak] = []
    expected, previous = GENESIS, None
    for row in rows:
        if row.hash is None or row.prev_hash is None:
            breaks.append(ChainBreak(row.id, "edited", f"event #{row.id} has no hash."))
        elif chain_hash(row.prev_hash, row.text) != row.hash:
            breaks.append(
                ChainBreak(
                    row.id,
                    "edited",
                    f"event #{row.id} was changed after it was written: its content no "
                    "longer matches its hash.",
                )
            )
        if row.prev_hash is not None and row.prev_hash != expected:
            breaks.append(_link_break(row, previous, rows, position))
        expected, previous = row.hash or "", row.id
    stored = {row.id: row.hash for row in rows}
    for event_id, digest in sorted((anchors or {}).items()):
        if event_id not in stored:
            breaks.append(
                ChainBreak(
                    event_id,
                    "missing",
                    f"event #{event_id}, anchored earlier, is not in the log: the log was cut "
                    "back or rewritten.",
                )
            )
        elif stored[event_id] != digest:
            breaks.append(
                ChainBreak(
                    event_id,
                    "edited",
                    f"event #{event_id} no longer has the hash it was anchored with "
                    f"({digest[:12]}…): the log was rewritten from #{event_id} or before, "
                    "every later hash recomputed.",
                )
            )
    last = rows[-1] if rows else None
    return ChainReport(
        events=len(rows),
        head=None if last is None else last.id,
        head_hash=None if last is None else last.hash,
        breaks=tuple(breaks),
    )


def _link_break(
    row: ChainedEvent,
    previous: int | None,
    rows: list[ChainedEvent],
    position: Mapping[str, int],
) -> ChainBreak:
    after = "the start of the log" if previous is None else f"event #{previous}"
    if row.prev_hash == GENESIS:
        return ChainBreak(
            row.id,
            "reordered",
            f"event #{row.id} claims to be the first event, but comes after {after}.",
        )
    found = position.get(row.prev_hash or "")
    if found is None:
        what = (
            "events before it were deleted"
            if previous is None
            else f"{after} was rewritten, or events between #{previous} and #{row.id} were deleted"
        )
        return ChainBreak(
            row.id,
            "missing",
            f"the event that #{row.id} was chained to is not in the log: {what}.",
        )
    return ChainBreak(
        row.id,
        "reordered",
        f"event #{row.id} was chained after event #{rows[found].id}, but comes after {after}: "
        "events were moved or inserted.",
    )
