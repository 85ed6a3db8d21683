"""The memory of a sync: per environment and target, the hash of the payload last applied; and the
backfilled rows a re-run need not plan again, by fingerprint (see `backfill.fingerprints`)."""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection

from ..engine import Outcome
from ..targets import action_targets, row_of
from .db import in_chunks
from .fast import Prepared, insert_rows, upsert_rows
from .schema import applied_payloads, applied_rows

_KEY = ("source", "environment", "target")
_PAYLOAD_COLUMNS = (
    "source",
    "environment",
    "target",
    "payload_hash",
    "event_id",
    "applied_at",
    "row_fingerprint",
    "row_config",
)
_ROW_COLUMNS = ("source", "environment", "fingerprint", "config_digest", "status")

_REMEMBERED = select(applied_payloads.c.target, applied_payloads.c.payload_hash).where(
    applied_payloads.c.source == bindparam("source"),
    applied_payloads.c.environment == bindparam("environment"),
    applied_payloads.c.target.in_(bindparam("targets", expanding=True)),
)


# On SQLite, a batch's targets go in as one JSON array: one statement instead of one per IN_CHUNK
# targets, each compiled by SQLAlchemy (a backfill asks for thousands at a time).
_REMEMBERED_SQLITE = Prepared(
    text(
        "SELECT target, payload_hash FROM applied_payloads WHERE source = :source "
        "AND environment = :environment AND target IN (SELECT value FROM json_each(:targets))"
    )
)


def remembered(conn: Connection, scope: tuple[str, str], targets: Iterable[str]) -> dict[str, str]:
    """{target: payload hash last applied} for those of `targets` that were ever applied."""
    source, environment = scope
    keys = sorted(set(targets))
    if not keys:
        return {}
    if conn.dialect.name == "sqlite":
        # On the driver's cursor (`fast.Prepared`): SQLAlchemy's result rows would cost more than the query.
        bound = {"source": source, "environment": environment, "targets": json.dumps(keys)}
        return dict(_REMEMBERED_SQLITE.fetchall(conn, bound))
    out: dict[str, str] = {}
    for chunk in in_chunks(keys):
        out.update(
            conn.execute(_REMEMBERED, {"source": source, "environment": environment, "targets": chunk}).all()
        )
    return out


def remember(
    conn: Connection,
    scope: tuple[str, str],
    applied: Sequence[tuple],
    now: datetime,
    known: Container[str] | None = None,
) -> None:
    """Remember (target, payload hash, event id[, row fingerprint[, config digest]]) as applied
    now, in `conn`'s transaction; a target named twice keeps its last hash. Without a row
    fingerprint (a live row), the target no longer holds the fingerprint of the backfilled row
    that applied it before. With a config digest, that row is remembered on the target (see
    `valid_rows`).

    `known`: the targets `remembered` found in this same transaction (SQLite's writers take its
    lock at BEGIN, so no other can add one meanwhile); the others are inserted plainly, which
    costs SQLite half of an upsert on a table with triggers. None: every target is upserted."""
    if not applied:
        return
    source, environment = scope
    last = {a[0]: a for a in applied}
    rows = [
        (
            source,
            environment,
            target,
            a[1],
            a[2],
            now,
            a[3] if len(a) > 3 else None,
            a[4] if len(a) > 4 else None,
        )
        for target, a in last.items()
    ]
    if known is None or conn.dialect.name != "sqlite":
        upsert_rows(conn, applied_payloads, _KEY, _PAYLOAD_COLUMNS, rows)
        return
    upsert_rows(conn, applied_payloads, _KEY, _PAYLOAD_COLUMNS, [r for r in rows if r[2] in known])
    insert_rows(conn, applied_payloads, _PAYLOAD_COLUMNS, [r for r in rows if r[2] not in known])


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
    .values(row_fingerprint=bindparam("f"), row_config=bindparam("c"))
)

# {status: fingerprints joined by commas}: one text per status instead of a row per fingerprint;
# the rows remembered on their one target last (`done`). SQLite reads those in one scan of the
# table (NOT INDEXED): through the primary key it would look up every row of the environment.
_VALID = {
    dialect: text(
        f"SELECT status, {joined.format('fingerprint')} FROM applied_rows "
        "WHERE source = :s AND environment = :e AND config_digest = :d GROUP BY status "
        f"UNION ALL SELECT 'done', {joined.format('row_fingerprint')} FROM applied_payloads{hint} "
        "WHERE source = :s AND environment = :e AND row_config = :d"
    )
    for dialect, joined, hint in (
        ("sqlite", "group_concat({}, ',')", " NOT INDEXED"),
        ("postgresql", "string_agg({}, ',')", ""),
    )
}


def mark_rows(conn: Connection, scope: tuple[str, str], marks: Sequence[tuple[str, str, str | None]]) -> None:
    """(target, row fingerprint, config digest or None): targets a backfilled row found unchanged
    now carry its fingerprint (the row that held one before is forgotten), and with a config
    digest remember the row (see `remember`)."""
    if marks:
        source, environment = scope
        conn.execute(_MARK, [{"s": source, "e": environment, "t": t, "f": f, "c": c} for t, f, c in marks])


def remember_rows(
    conn: Connection, scope: tuple[str, str], config_digest: str, rows: Sequence[tuple[str, str]]
) -> None:
    """Remember backfilled rows (fingerprint, how each ended) under `config_digest`, in `conn`'s
    transaction, once the targets they applied carry their fingerprint (`remember`, `mark_rows`):
    a row is forgotten when one of them is applied by anything else (see `schema.applied_rows`)."""
    if not rows:
        return
    source, environment = scope
    values = [
        (source, environment, fingerprint, config_digest, status)
        for fingerprint, status in dict(rows).items()
    ]
    upsert_rows(conn, applied_rows, ("source", "environment", "fingerprint"), _ROW_COLUMNS, values)


def valid_rows(conn: Connection, scope: tuple[str, str], config_digest: str) -> dict[str, str]:
    """{fingerprint: how it ended} of the rows remembered under `config_digest` (those whose
    targets all still hold what they applied: the others were forgotten): in `applied_rows`, or
    on the one target a row applied (`row_config`), which forgets it as it changes hands."""
    source, environment = scope
    found = conn.execute(_VALID[conn.dialect.name], {"s": source, "e": environment, "d": config_digest})
    return {fingerprint: status for status, joined in found if joined for fingerprint in joined.split(",")}


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
