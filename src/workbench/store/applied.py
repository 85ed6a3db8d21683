"""The memory of a sync: per environment and target, the hash of the payload last applied; and the
backfilled rows a re-run need not plan again, by fingerprint (see `backfill.fingerprints`)."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection

from ..engine import Outcome
from ..targets import action_targets, row_of
from .db import _insert, in_chunks
from .fast import bind_processor
from .schema import applied_payloads, applied_rows

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


def remember(conn: Connection, scope: tuple[str, str], applied: Sequence[tuple], now: datetime) -> None:
    """Remember (target, payload hash, event id[, row fingerprint]) as applied now, in `conn`'s
    transaction; a target named twice keeps its last hash. Without a row fingerprint (a live
    row), the target no longer holds the fingerprint of the backfilled row that applied it before."""
    if not applied:
        return
    source, environment = scope
    last = {a[0]: (a[1], a[2], a[3] if len(a) > 3 else None) for a in applied}
    if conn.dialect.name == "sqlite":
        # The driver's executemany, as `fast.insert_many` does: a fraction of SQLAlchemy's per-row cost.
        bind_time = bind_processor(applied_payloads.c.applied_at.type, conn.dialect)
        stamp = bind_time(now) if bind_time is not None else now
        conn.exec_driver_sql(
            _SQLITE_UPSERT, [(source, environment, t, d, e, stamp, f) for t, (d, e, f) in last.items()]
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
            "row_fingerprint": fingerprint,
        }
        for target, (digest, event_id, fingerprint) in last.items()
    ]
    conn.execute(_upsert(conn), rows)


_SQLITE_UPSERT = (
    "INSERT INTO applied_payloads (source, environment, target, payload_hash, event_id, applied_at, "
    "row_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, environment, target) DO UPDATE SET "
    "payload_hash = excluded.payload_hash, event_id = excluded.event_id, applied_at = excluded.applied_at, "
    "row_fingerprint = excluded.row_fingerprint"
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
                "row_fingerprint": insert.excluded.row_fingerprint,
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


# -- backfilled rows, by fingerprint ------------------------------------------------------------

_MARK = (
    update(applied_payloads)
    .where(
        applied_payloads.c.source == bindparam("s"),
        applied_payloads.c.environment == bindparam("e"),
        applied_payloads.c.target == bindparam("t"),
    )
    .values(row_fingerprint=bindparam("f"))
)

# {status: fingerprints joined by commas}: one text per status instead of a row per fingerprint.
_VALID = {
    dialect: text(
        f"SELECT status, {joined} FROM applied_rows "
        "WHERE source = :s AND environment = :e AND config_digest = :d GROUP BY status"
    )
    for dialect, joined in (
        ("sqlite", "group_concat(fingerprint, ',')"),
        ("postgresql", "string_agg(fingerprint, ',')"),
    )
}


def mark_rows(conn: Connection, scope: tuple[str, str], marks: Sequence[tuple[str, str]]) -> None:
    """(target, row fingerprint): targets a backfilled row found unchanged now carry its
    fingerprint (the row that held one before is forgotten)."""
    if marks:
        source, environment = scope
        conn.execute(_MARK, [{"s": source, "e": environment, "t": t, "f": f} for t, f in marks])


def remember_rows(
    conn: Connection, scope: tuple[str, str], config_digest: str, rows: Sequence[tuple[str, str]]
) -> None:
    """Remember backfilled rows (fingerprint, how each ended) under `config_digest`, in `conn`'s
    transaction, once the targets they applied carry their fingerprint (`remember`, `mark_rows`):
    a row is forgotten when one of them is applied by anything else (see `schema.applied_rows`)."""
    if not rows:
        return
    source, environment = scope
    last = dict(rows)
    if conn.dialect.name == "sqlite":  # the driver's executemany, as in `remember`
        conn.exec_driver_sql(
            _SQLITE_ROWS_UPSERT, [(source, environment, f, config_digest, s) for f, s in last.items()]
        )
        return
    values = [
        {
            "source": source,
            "environment": environment,
            "fingerprint": fingerprint,
            "config_digest": config_digest,
            "status": status,
        }
        for fingerprint, status in last.items()
    ]
    statement = _UPSERTS.get(("rows", conn.dialect.name))
    if statement is None:
        insert = _insert(conn, applied_rows)
        statement = _UPSERTS[("rows", conn.dialect.name)] = insert.on_conflict_do_update(
            index_elements=["source", "environment", "fingerprint"],
            set_={c: insert.excluded[c] for c in ("config_digest", "status")},
        )
    conn.execute(statement, values)


_SQLITE_ROWS_UPSERT = (
    "INSERT INTO applied_rows (source, environment, fingerprint, config_digest, status) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, environment, fingerprint) DO UPDATE SET "
    "config_digest = excluded.config_digest, status = excluded.status"
)


def valid_rows(conn: Connection, scope: tuple[str, str], config_digest: str) -> dict[str, str]:
    """{fingerprint: how it ended} of the rows remembered under `config_digest` (those whose
    targets all still hold what they applied: the others were forgotten)."""
    source, environment = scope
    found = conn.execute(_VALID[conn.dialect.name], {"s": source, "e": environment, "d": config_digest})
    return {fingerprint: status for status, joined in found for fingerprint in joined.split(",")}


def forget_rows(conn: Connection, scope: tuple[str, str], config_digest: str) -> None:
    """Forget the rows remembered under any other config digest (a run of this config replaces them)."""
    source, environment = scope
    conn.execute(
        delete(applied_rows).where(
            applied_rows.c.source == source,
            applied_rows.c.environment == environment,
            applied_rows.c.config_digest != config_digest,
        )
    )
