"""The memory of a sync: per environment and target, the hash of the payload last applied."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from ..engine import Outcome
from ..targets import action_targets, row_of
from .db import _insert, in_chunks
from .fast import bind_processor
from .schema import applied_payloads

_REMEMBERED = select(applied_payloads.c.target, applied_payloads.c.payload_hash).where(
    applied_payloads.c.source == bindparam("source"),
    applied_payloads.c.environment == bindparam("environment"),
    applied_payloads.c.target.in_(bindparam("targets", expanding=True)),
)


def remembered(conn: Connection, scope: tuple[str, str], targets: Iterable[str]) -> dict[str, str]:
    """{target: payload hash last applied} for those of `targets` that were ever applied."""
    source, environment = scope
    keys = sorted(set(targets))
    found: dict[str, str] = {}
    for chunk in in_chunks(keys):
        found.update(
            conn.execute(_REMEMBERED, {"source": source, "environment": environment, "targets": chunk}).all()
        )
    return found


def remember(
    conn: Connection, scope: tuple[str, str], applied: Sequence[tuple[str, str, str | None]], now: datetime
) -> None:
    """Remember (target, payload hash, event id) as applied now, in `conn`'s transaction; a target
    named twice keeps its last hash."""
    if not applied:
        return
    source, environment = scope
    last = {target: (digest, event_id) for target, digest, event_id in applied}
    if conn.dialect.name == "sqlite":
        # The driver's executemany, as `fast.insert_many` does: a fraction of SQLAlchemy's per-row cost.
        bind_time = bind_processor(applied_payloads.c.applied_at.type, conn.dialect)
        stamp = bind_time(now) if bind_time is not None else now
        conn.exec_driver_sql(
            _SQLITE_UPSERT, [(source, environment, t, d, e, stamp) for t, (d, e) in last.items()]
        )
        return
    rows = [
        {
            "source": source,
            "environment": environment,
            "target": target,
            "payload_hash": digest,
            "event_id": event_id,
            "applied_at": now,
        }
        for target, (digest, event_id) in last.items()
    ]
    conn.execute(_upsert(conn), rows)


_SQLITE_UPSERT = (
    "INSERT INTO applied_payloads (source, environment, target, payload_hash, event_id, applied_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, environment, target) DO UPDATE SET "
    "payload_hash = excluded.payload_hash, event_id = excluded.event_id, applied_at = excluded.applied_at"
)
_UPSERTS: dict[str, Any] = {}


def _upsert(conn: Connection):
    """The dialect's INSERT … ON CONFLICT DO UPDATE, built once (a statement built per batch would
    leave reference cycles behind, which a backfill lets the collector free only rarely)."""
    statement = _UPSERTS.get(conn.dialect.name)
    if statement is None:
        insert = _insert(conn, applied_payloads)
        statement = _UPSERTS[conn.dialect.name] = insert.on_conflict_do_update(
            index_elements=["source", "environment", "target"],
            set_={
                "payload_hash": insert.excluded.payload_hash,
                "event_id": insert.excluded.event_id,
                "applied_at": insert.excluded.applied_at,
            },
        )
    return statement


def applied_by(
    scope: tuple[str, str], outcome: Outcome, event_id: str | None, mappings: Container[str] | None = None
) -> list[tuple[str, str, str | None]]:
    """(memory key, payload hash, event id) of each action of `outcome` that succeeded (of `mappings`
    only, when given: the ones handed to the sink this time)."""
    out: list[tuple[str, str, str | None]] = []
    row = None
    for result in outcome.actions:
        if result.status != "success" or result.payload is None:
            continue
        if mappings is not None and result.mapping not in mappings:
            continue
        row = row or row_of(*scope, outcome.event, outcome.idempotency_key, outcome.body)
        targets = action_targets(result.action, result.payload, row, result.mapping)
        out += [(key, digest, event_id) for _, key, digest in targets]
    return out
