"""The audit trail's hash chain, pure: canonical text, hashing and where a walk breaks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from dockyard.registry.audit import (
    GENESIS,
    ChainedEvent,
    canonical,
    chain_hash,
    normalize,
    verify_chain,
)

T0 = datetime(2026, 12, 2, 17, 0, 0, 123456, tzinfo=UTC)


def text(i: int, actor: str = "tester") -> str:
    return canonical(
        at=T0 + timedelta(seconds=i),
        actor=actor,
        action="test.event",
        model="m",
        version=None,
        before=None,
        after={"n": i},
        details={"i": i},
    )


def chain(n: int) -> list[ChainedEvent]:
    events, prev = [], GENESIS
    for i in range(1, n + 1):
        body = text(i)
        digest = chain_hash(prev, body)
        events.append(ChainedEvent(i, prev, digest, body))
        prev = digest
    return events


def test_the_hash_is_sha256_of_the_previous_hash_and_the_canonical_text() -> None:
    assert chain_hash(GENESIS, "x") == hashlib.sha256(f"{GENESIS}\nx".encode()).hexdigest()


def test_canonical_text_is_the_same_whatever_the_database_gave_back() -> None:
    written = canonical(
        at=T0,
        actor="a",
        action="b",
        model=None,
        version=None,
        before={"z": 1.0, "a": [1e20, -0.0, (1, 2)]},
        after=None,
        details={1: "one", "nan": float("nan")},
    )
    read_back = canonical(
        at=T0.replace(tzinfo=None),  # SQLite drops the zone; the value is UTC
        actor="a",
        action="b",
        model=None,
        version=None,
        before={"a": [100000000000000000000, 0, [1, 2]], "z": 1},  # JSONB's numbers
        after=None,
        details={"1": "one", "nan": None},
    )
    assert written == read_back
    assert canonical(
        at=T0.astimezone(timezone(timedelta(hours=2))),
        actor="a",
        action="b",
        model=None,
        version=None,
        before=None,
        after=None,
        details={},
    ) == canonical(
        at=T0, actor="a", action="b", model=None, version=None, before=None, after=None, details={}
    )
    assert normalize({"b": True, "f": 0.5}) == {"b": True, "f": 0.5}


def test_an_intact_chain_has_no_break_and_reports_its_head() -> None:
    events = chain(4)
    report = verify_chain(events)
    assert report.intact
    assert (report.events, report.head, report.head_hash) == (4, 4, events[-1].hash)
    assert verify_chain([]).intact


def test_an_edited_event_breaks_at_itself() -> None:
    events = chain(4)
    events[1] = ChainedEvent(2, events[1].prev_hash, events[1].hash, text(2, actor="mallory"))
    report = verify_chain(events)
    assert [(b.event, b.kind) for b in report.breaks] == [(2, "edited")]


def test_a_deleted_event_breaks_at_the_next_one() -> None:
    events = chain(5)
    del events[2]
    report = verify_chain(events)
    assert [(b.event, b.kind) for b in report.breaks] == [(4, "missing")]
    assert "between #2 and #4" in report.breaks[0].message


def test_moved_events_break_as_reordered() -> None:
    a, b, c, d = chain(4)
    moved = [a, ChainedEvent(2, c.prev_hash, c.hash, c.text), ChainedEvent(3, *_rest(b)), d]
    report = verify_chain(moved)
    assert report.breaks[0].event == 2
    assert {problem.kind for problem in report.breaks} == {"reordered"}


def test_a_second_genesis_is_reordered() -> None:
    events = chain(2)
    body = text(9)
    events.append(ChainedEvent(3, GENESIS, chain_hash(GENESIS, body), body))
    report = verify_chain(events)
    assert [(b.event, b.kind) for b in report.breaks] == [(3, "reordered")]


def _rest(event: ChainedEvent) -> tuple[str | None, str | None, str]:
    return event.prev_hash, event.hash, event.text


def test_anchors_catch_a_log_rewritten_whole_or_cut_back() -> None:
    events = chain(4)
    anchor = {4: events[3].hash or ""}
    assert verify_chain(events, anchor).intact
    rewritten = chain(2)  # a whole, shorter or different chain: the walk alone finds nothing
    body = text(3, actor="mallory")
    rewritten.append(
        ChainedEvent(3, rewritten[1].hash, chain_hash(rewritten[1].hash or "", body), body)
    )
    body = text(4)
    rewritten.append(
        ChainedEvent(4, rewritten[2].hash, chain_hash(rewritten[2].hash or "", body), body)
    )
    assert verify_chain(rewritten).intact
    assert [(b.event, b.kind) for b in verify_chain(rewritten, anchor).breaks] == [(4, "edited")]
    assert [(b.event, b.kind) for b in verify_chain(events[:3], anchor).breaks] == [(4, "missing")]
