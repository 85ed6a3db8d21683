"""The event-log page's reads: filtered, searched, keyset-paged, and bounded whatever a row holds.

Every list column that can be long (body, payloads, errors, even the event type) is cut in SQL, so
a page reads a few kilobytes a row whether the row holds 50 bytes or 5 MiB. Each filter has an
index that starts with the scope (source, environment) and ends with the page's order
(received_at, id), so a page costs the same at a thousand events or a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, case, cast, func, literal, literal_column, or_, select, tuple_
from sqlalchemy.engine import Connection

from .db import READ, in_chunks
from .log import as_datetime, iso
from .schema import EVENT_KEY_LENGTH, actions, events

BODY_PREVIEW = 1000
PAYLOAD_PREVIEW = 400
ERROR_PREVIEW = 400
EVENT_PREVIEW = 200
IDENTITY_PREVIEW = 200
ACTIONS_SHOWN = 10
# A page whose conditions no one index holds (a text search, or two of status, event type and
# origin) reads at most this many rows of the index it uses, then offers to look further: about
# 40 ms of reading on either database (PostgreSQL reads rows' text about 3 times slower).
WINDOW = {"sqlite": 10_000, "postgresql": 3_000}
ORIGINS = ("live", "backfill", "replay")


@dataclass(frozen=True)
class Cursor:
    """Where a page begins or ends: the order key of one event."""

    received_at: datetime
    id: str

    def __str__(self) -> str:
        return f"{iso(self.received_at)},{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """From `str(cursor)`; ValueError when it is not one."""
        when, _, event_id = text.partition(",")
        if not event_id.startswith("evt_"):
            raise ValueError(text)
        moment = as_datetime(when)
        assert moment is not None
        return cls(moment, event_id)


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    event: str | None = None
    origin: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


@dataclass
class Page:
    rows: list[dict[str, Any]]
    newer: Cursor | None  # the page before this one starts after this key (None: this is the newest)
    older: Cursor | None  # the next page starts before this key (None: nothing older)
    searched_to: datetime | None = None  # the page stopped at its window here before it filled


def _order_key():
    return tuple_(events.c.received_at, events.c.id)


def _where(source: str, environment: str, filters: Filters) -> tuple[list, list]:
    """The conditions one index holds (scope, one of status, origin or event type, time), and
    the rest, which are checked row by row."""
    indexed = [events.c.source == source, events.c.environment == environment]
    equal = []
    if filters.status:
        equal.append([events.c.status == filters.status])
    if filters.origin:
        equal.append([events.c.origin == filters.origin])
    if filters.event:
        # The index holds the event type's first characters (PostgreSQL refuses longer index rows).
        event = [event_key() == filters.event[:EVENT_KEY_LENGTH]]
        if len(filters.event) >= EVENT_KEY_LENGTH:  # a shorter prefix that matches is the whole type
            event.append(events.c.event == filters.event)
        equal.append(event)
    if equal:
        indexed += equal[0]
    if filters.since is not None:
        indexed.append(events.c.received_at >= filters.since)
    if filters.until is not None:
        indexed.append(events.c.received_at < filters.until)
    return indexed, [clause for more in equal[1:] for clause in more]


def _all_conditions(conn: Connection, source: str, environment: str, filters: Filters) -> list:
    indexed, rest = _where(source, environment, filters)
    if filters.search and filters.search.strip():
        rest.append(_text_match(filters.search.strip(), conn.dialect.name))
    return indexed + rest


def event_key():
    """The indexed prefix of the event type (literal numbers: SQLite matches an index expression
    only to the same text, and a bound parameter is not)."""
    return func.substr(events.c.event, literal_column("1"), literal_column(str(EVENT_KEY_LENGTH)))


def _looks_like_id(term: str) -> bool:
    return term.startswith("evt_") and len(term) == 30 and term[4:].isalnum()


def _text_match(term: str, dialect: str):
    """Case-insensitive containment in the event type or body, or the very event id."""
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if dialect == "sqlite":  # its LIKE ignores ASCII case already; `ilike` would lower() each body
        return or_(
            events.c.id == term,
            events.c.event.like(pattern, escape="\\"),
            events.c.body.like(pattern, escape="\\"),
        )
    # PostgreSQL: ASCII case folding too (collation "C"), which reads a third faster than the
    # database's own collation.
    return or_(
        events.c.id == term,
        events.c.event.collate("C").ilike(pattern, escape="\\"),
        events.c.body.collate("C").ilike(pattern, escape="\\"),
    )


def _list_columns():
    return (
        events.c.id,
        events.c.received_at,
        events.c.origin,
        events.c.status,
        func.substr(events.c.event, 1, EVENT_PREVIEW).label("event"),
        func.length(events.c.event).label("event_length"),
        func.substr(events.c.error, 1, ERROR_PREVIEW).label("error"),
        func.length(events.c.error).label("error_length"),
        func.substr(events.c.body, 1, BODY_PREVIEW).label("body"),
        func.length(events.c.body).label("body_length"),
        events.c.idempotency_key,
        events.c.replays,
    )


def reading(store) -> Connection:
    return store.engine.connect().execution_options(**READ)


def browse(
    store,
    source: str,
    environment: str,
    filters: Filters,
    limit: int = 50,
    before: Cursor | None = None,
    after: Cursor | None = None,
) -> Page:
    """One page of events, newest first: the `limit` before `before` (or after `after`, or the newest)."""
    where, rest = _where(source, environment, filters)
    key = _order_key()
    term = (filters.search or "").strip()
    with reading(store) as conn, conn.begin():
        if term and _looks_like_id(term):
            where.append(events.c.id == term)
        elif term:
            rest.append(_text_match(term, conn.dialect.name))
        if before is not None:
            where.append(key < tuple_(literal(before.received_at, events.c.received_at.type), before.id))
        if after is not None:
            where.append(key > tuple_(literal(after.received_at, events.c.received_at.type), after.id))
        ascending = after is not None and before is None
        order = (
            (events.c.received_at.asc(), events.c.id.asc())
            if ascending
            else (events.c.received_at.desc(), events.c.id.desc())
        )
        boundary = None
        if rest:
            # Bound the rows checked one by one: the WINDOW-th row in page order, by the index.
            boundary = conn.execute(
                select(events.c.received_at, events.c.id)
                .where(*where)
                .order_by(*order)
                .offset(WINDOW.get(conn.dialect.name, 3_000) - 1)
                .limit(1)
            ).first()
            if boundary is not None:
                edge = tuple_(literal(boundary.received_at, events.c.received_at.type), boundary.id)
                where.append(key >= edge if not ascending else key <= edge)
            where += rest
        rows = [
            dict(r._mapping)
            for r in conn.execute(select(*_list_columns()).where(*where).order_by(*order).limit(limit + 1))
        ]
        more = len(rows) > limit
        rows = rows[:limit]
        if ascending:
            rows.reverse()
        _add_actions(conn, rows)
    for row in rows:
        row["received_at"] = iso(as_datetime(row["received_at"]))
    # After the reversal rows run newest to oldest, whichever way they were read.
    first = Cursor(as_datetime(rows[0]["received_at"]), rows[0]["id"]) if rows else None
    last = Cursor(as_datetime(rows[-1]["received_at"]), rows[-1]["id"]) if rows else None
    edge = Cursor(as_datetime(boundary.received_at), boundary.id) if boundary is not None else None
    searched_to = None
    if ascending:
        # A window that ended before the page filled: the newer page goes on from its edge.
        newer = first if more else edge
        older = last or after
    else:
        newer = (first or before) if before is not None else None
        older = last if more else edge
        if edge is not None and not more:
            # The window ended before the page filled: the next page goes on where the search stopped.
            searched_to = edge.received_at
    return Page(rows, newer, older, searched_to)


def _identity_of(conn: Connection):
    """SQL for the recipient an action is about: `collection/id`, or the id, from its payload."""
    payload = actions.c.payload
    if conn.dialect.name == "postgresql":
        ident = payload.op("->>")("id")
        collection = payload.op("->>")("collection")
    else:
        # A payload nested past SQLite's JSON depth is not valid to it: no identity, no error.
        valid = func.json_valid(payload) == 1
        ident = case((valid, func.json_extract(payload, "$.id")))
        collection = case((valid, func.json_extract(payload, "$.collection")))
    ident = func.substr(cast(ident, Text), 1, IDENTITY_PREVIEW)
    collection = func.substr(cast(collection, Text), 1, IDENTITY_PREVIEW)
    return ident.label("identity"), collection.label("collection")


def _add_actions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each row's first ACTIONS_SHOWN actions (previews), action count and identity."""
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        row["actions"], row["action_count"], row["identity"] = [], 0, None
    ident, collection = _identity_of(conn)
    text_payload = cast(actions.c.payload, Text)
    text_result = cast(actions.c.result, Text)
    for chunk in in_chunks(list(by_id)):
        query = (
            select(
                actions.c.event_id,
                actions.c.action,
                actions.c.status,
                actions.c.attempts,
                actions.c.request_key,
                actions.c.next_attempt_at,
                func.substr(text_payload, 1, PAYLOAD_PREVIEW).label("payload"),
                func.length(text_payload).label("payload_length"),
                func.substr(text_result, 1, PAYLOAD_PREVIEW).label("result"),
                func.length(text_result).label("result_length"),
                func.substr(actions.c.error, 1, ERROR_PREVIEW).label("error"),
                func.length(actions.c.error).label("error_length"),
                ident,
                collection,
            )
            .where(actions.c.event_id.in_(chunk))
            .order_by(actions.c.event_id, actions.c.position, actions.c.id)
        )
        for a in conn.execute(query):
            row = by_id[a.event_id]
            row["action_count"] += 1
            if row["identity"] is None and a.identity:
                row["identity"] = f"{a.collection}/{a.identity}" if a.collection else a.identity
            if len(row["actions"]) < ACTIONS_SHOWN:
                item = dict(a._mapping)
                item["next_attempt_at"] = iso(as_datetime(item["next_attempt_at"]))
                row["actions"].append(item)


def count_matching(store, source: str, environment: str, filters: Filters) -> int:
    """How many events match `filters` (text search included, over the whole log)."""
    with reading(store) as conn, conn.begin():
        where = _all_conditions(conn, source, environment, filters)
        return conn.execute(select(func.count()).select_from(events).where(*where)).scalar_one()


def ids_matching(store, source: str, environment: str, filters: Filters, limit: int) -> list[str]:
    """Ids of the oldest `limit` events matching `filters`, oldest first (for replays in bulk)."""
    with reading(store) as conn, conn.begin():
        where = _all_conditions(conn, source, environment, filters)
        query = select(events.c.id).where(*where).order_by(events.c.received_at, events.c.id).limit(limit)
        return list(conn.execute(query).scalars())


def whole_entry(store, event_id: str) -> dict[str, Any] | None:
    """One entry with its JSON columns as text, so a value no JSON parser takes still shows."""
    event_columns = [c for c in events.c if c.name not in ("headers", "body_bytes")]
    action_columns = [c for c in actions.c if c.name not in ("params", "payload", "result")]
    with reading(store) as conn, conn.begin():
        found = conn.execute(
            select(*event_columns, cast(events.c.headers, Text).label("headers")).where(
                events.c.id == event_id
            )
        ).first()
        if found is None:
            return None
        entry = dict(found._mapping)
        entry["actions"] = [
            dict(a._mapping)
            for a in conn.execute(
                select(
                    *action_columns,
                    cast(actions.c.params, Text).label("params"),
                    cast(actions.c.payload, Text).label("payload"),
                    cast(actions.c.result, Text).label("result"),
                )
                .where(actions.c.event_id == event_id)
                .order_by(actions.c.position, actions.c.id)
            )
        ]
    for key in ("received_at", "updated_at"):
        entry[key] = iso(as_datetime(entry[key]))
    for a in entry["actions"]:
        for key in ("next_attempt_at", "updated_at"):
            a[key] = iso(as_datetime(a[key]))
    return entry
