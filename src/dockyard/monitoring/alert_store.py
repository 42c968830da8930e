"""Alert rule state in the registry's database (the ``alert_states`` table), so every
process and replica sees the same state.

A transition is claimed with a compare-and-set on the row (``UPDATE ... WHERE status = <what
this process read>``, :meth:`AlertStates.claim`): when several processes evaluate the same
rule at once, exactly one wins and notifies; the others only refresh their gauges. The
state machine itself is pure (:func:`dockyard.monitoring.alerts.evaluate`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dockyard.monitoring.alerts import AlertState
from dockyard.registry import tables as t
from dockyard.registry.events import record_event

if TYPE_CHECKING:
    from dockyard.registry.database import Database


class AlertStates:
    """Read and claim alert rule states (one row per endpoint and rule)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, endpoint: str, rule: str) -> AlertState:
        """The rule's stored state (a fresh ``ok`` one when it was never evaluated)."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(t.alert_states).where(
                    t.alert_states.c.endpoint == endpoint, t.alert_states.c.rule == rule
                )
            ).first()
        if row is None:
            return AlertState()
        return AlertState(
            status=row.status,
            since=_seconds(row.since),
            last_notified=_seconds(row.last_notified),
            value=row.value,
        )

    def claim(
        self,
        endpoint: str,
        rule: str,
        before: AlertState,
        after: AlertState,
        now: float,
        *,
        event: tuple[str, str, dict[str, Any]] | None = None,
    ) -> bool:
        """Store ``after`` if the row still says ``before``'s status; False when another
        process moved it first. ``event`` (actor, action, details) goes to the audit trail in
        the same transaction when the claim wins: a transition and its event are never seen
        apart."""
        values = {
            "status": after.status,
            "since": _moment(after.since),
            "last_notified": _moment(after.last_notified),
            "value": after.value,
            "evaluated_at": _moment(now),
        }
        table = t.alert_states
        with self.db.write() as conn:
            exists = conn.execute(
                sa.select(table.c.status).where(table.c.endpoint == endpoint, table.c.rule == rule)
            ).first()
            if exists is None:
                conn.execute(table.insert().values(endpoint=endpoint, rule=rule, **values))
            else:
                result = conn.execute(
                    table.update()
                    .where(
                        table.c.endpoint == endpoint,
                        table.c.rule == rule,
                        table.c.status == before.status,
                    )
                    .values(**values)
                )
                if not result.rowcount:
                    return False
            if event is not None:
                actor, action, details = event
                record_event(conn, actor, action, None, None, details=details)
            return True

    def list(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every rule's stored state, optionally of one endpoint (for the control plane, the
        report and the CLI)."""
        table = t.alert_states
        query = sa.select(table).order_by(table.c.endpoint, table.c.rule)
        if endpoint is not None:
            query = query.where(table.c.endpoint == endpoint)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "endpoint": row.endpoint,
                "rule": row.rule,
                "status": row.status,
                "since": _iso(row.since),
                "value": row.value,
                "evaluated_at": _iso(row.evaluated_at),
            }
            for row in rows
        ]


def _seconds(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat(timespec="seconds")


__all__ = ["AlertStates"]
