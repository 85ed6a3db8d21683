"""The event log: every verified request, its outcome and its actions, in one database."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from ..engine import ActionResult, Outcome, SourceEvent, new_event_id, rolled_up_status, utcnow
from ..retry import DEFAULT_RETRY, RetryPolicy
from . import records
from .applied import applied_by, remember
from .db import READ, StoreError, describe, in_chunks, make_engine
from .fast import Prepared, insert_many
from .idempotency import StoreIdempotency, logged_result  # noqa: F401  (the log's reader)
from .migrate import upgrade
from .schema import actions, events
from .upkeep import Upkeep

log = logging.getLogger(__name__)

DEFAULT_STORE_URL = "sqlite:///data/workbench.sqlite"
EVENT_STATUSES = ("received", "processed", "idempotent", "no_mapping", "queued", "invalid", "failed")
# Statuses a replay can change: the ones where some action did not (yet) succeed.
REPLAYABLE = ("received", "queued", "failed")


# The request path's statements, compiled once and run on the driver's cursor (see `fast`).
_INSERT_EVENT = Prepared(events.insert().values({c.name: bindparam(c.name, type_=c.type) for c in events.c}))
_ACTION_COLUMNS = [c for c in actions.c if c.name != "id"]
_INSERT_ACTIONS = Prepared(
    actions.insert().values({c.name: bindparam(c.name, type_=c.type) for c in _ACTION_COLUMNS})
)
_ACTIONS_OF_EVENT = Prepared(
    select(actions.c.id, actions.c.mapping, actions.c.status, actions.c.attempts).where(
        actions.c.event_id == bindparam("event_key", type_=actions.c.event_id.type)
    )
)
_UPDATE_EVENT = Prepared(
    update(events)
    .where(events.c.id == bindparam("event_key", type_=events.c.id.type))
    .values(
        status=bindparam("new_status", type_=events.c.status.type),
        error=bindparam("new_error", type_=events.c.error.type),
        updated_at=bindparam("new_updated_at", type_=events.c.updated_at.type),
        # A replay that does not know them leaves the event type and idempotency key as logged.
        event=func.coalesce(bindparam("new_event", type_=events.c.event.type), events.c.event),
        idempotency_key=func.coalesce(
            bindparam("new_key", type_=events.c.idempotency_key.type), events.c.idempotency_key
        ),
        idempotency_note=func.coalesce(
            bindparam("new_note", type_=events.c.idempotency_note.type), events.c.idempotency_note
        ),
    )
)
# SET columns come from the parameters given at execution (replays only).
_UPDATE_ACTION = update(actions).where(actions.c.id == bindparam("action_key"))


class _Earlier(NamedTuple):
    id: int
    mapping: str
    status: str
    attempts: int


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as the HTTP API shows times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stored_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "authorization"}


def _raw_body(event: SourceEvent) -> tuple[str, bytes | None]:
    """The body as text, plus the raw bytes when the text cannot hold them exactly: bytes that
    are not UTF-8, or NUL characters (which PostgreSQL text refuses), shown as U+FFFD."""
    body = event.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace").replace("\x00", "\ufffd"), raw
    else:
        text = event.raw_text
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no database stores them
            raw = text.encode("utf-8", "surrogatepass")
            return raw.decode("utf-8", "replace").replace("\x00", "\ufffd"), raw
    if "\x00" in text:
        return text.replace("\x00", "\ufffd"), raw
    return text, None


def action_values(
    result: ActionResult, position: int, attempts: int, next_attempt: datetime | None, now: datetime
) -> dict:
    """The columns of one action-log row (without its event id and mapping)."""
    return {
        "position": position,
        "action": result.action,
        "status": result.status,
        "params": result.params,
        "payload": result.payload,
        "result": result.result if result.error is None else None,
        "error": result.error,
        "attempts": attempts,
        "next_attempt_at": next_attempt,
        "updated_at": now,
        "request_key": result.request_key,
    }


def _entry(row) -> dict[str, Any]:
    """One `events` row as a log entry, its actions still to be added."""
    return {
        "id": row.id,
        "received_at": iso(row.received_at),
        "source": row.source,
        "environment": row.environment,
        "origin": row.origin,
        "event": row.event,
        "status": row.status,
        "body": row.body,
        "headers": row.headers or {},
        "idempotency_key": row.idempotency_key,
        "idempotency_note": row.idempotency_note,
        "error": row.error,
        "replays": row.replays,
        "updated_at": iso(row.updated_at),
        "actions": [],
    }


def _action(row) -> dict[str, Any]:
    """One `actions` row as it appears in a log entry."""
    return {
        "action": row.action,
        "status": row.status,
        "payload": row.payload,
        "params": row.params,
        "result": row.result,
        "error": row.error,
        "mapping": row.mapping,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "request_key": row.request_key,
    }


class Store:
    """Event log, action log, idempotency keys and the local recipient store, over SQLAlchemy Core."""

    def __init__(self, url: str | None = None, retry: RetryPolicy = DEFAULT_RETRY, create: bool = True):
        self.url = url or DEFAULT_STORE_URL
        self.engine = make_engine(self.url)
        self.retry = retry
        self.upkeep = Upkeep(self.transaction, retry)
        if create:
            self.create_tables()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def create_tables(self) -> None:
        """Create the tables, or upgrade them to the newest schema revision (Alembic, under a lock)."""
        try:
            upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot create or upgrade the event-log tables in {self!r}: {describe(exc)}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A write transaction, committed on success; within `conn` when one is given."""
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as own:
            yield own

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One pooled connection for several transactions in a row (a request's record, then its
        processing), instead of a checkout (and on PostgreSQL a ping) for each."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def unit_of_work(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A transaction that begins at its first statement and commits at the end; on `conn`
        (which must not be in a transaction) when one is given."""
        if conn is None:
            with self.engine.connect() as own, self.unit_of_work(own) as c:
                yield c
            return
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(**READ) as conn, conn.begin():
            yield conn

    def idempotency(self, conn: Connection | None = None) -> StoreIdempotency:
        return StoreIdempotency(self.engine, conn)

    # -- upkeep (`upkeep.Upkeep`) ----------------------------------------------------------

    def claim_due(self, now: datetime | None = None, limit: int = 100) -> list[str]:
        return self.upkeep.claim_due(now, limit)

    def claim_stalled(
        self, older_than: timedelta, now: datetime | None = None, limit: int = 100
    ) -> list[str]:
        return self.upkeep.claim_stalled(older_than, now, limit)

    def prune(self, older_than_days: float = 30, now: datetime | None = None) -> int:
        return self.upkeep.prune(older_than_days, now)

    # -- the local sink's records (`records.py`) --------------------------------------------

    merge_record = staticmethod(records.merge_record)
    insert_records = staticmethod(records.insert_records)
    patch_records = staticmethod(records.patch_records)

    # -- writing --------------------------------------------------------------------------

    def record_received(
        self, event: SourceEvent, source: str, environment: str, conn=None, *, commit: bool = False
    ) -> str:
        """Log a verified request before anything else happens to it; returns its `evt_` id.

        Sets `event.id` and `event.received_at` when they are not set yet. Given `conn`, the row
        is written in its transaction, which `commit` commits.
        """
        event.received_at = event.received_at or utcnow()
        event.id = event.id or new_event_id(event.received_at)
        text, raw = _raw_body(event)
        row = {
            "id": event.id,
            "received_at": event.received_at,
            "source": source,
            "environment": environment,
            "origin": event.origin,
            "event": None,
            "status": "received",
            "body": text,
            "body_bytes": raw,
            "headers": _stored_headers(event.headers),
            "idempotency_key": None,
            "idempotency_note": None,
            "error": None,
            "replays": 0,
            "updated_at": event.received_at,
        }
        try:
            with self.transaction(conn) as c:
                _INSERT_EVENT.execute(c, row)
            if conn is not None and commit:
                conn.commit()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot write the event log: {describe(exc)}; nothing of this row was kept, send it "
                f"again once the store can be written (store {self!r})"
            ) from exc
        return event.id

    def record_outcome(
        self,
        event_id: str,
        outcome: Outcome,
        conn: Connection | None = None,
        *,
        now: datetime | None = None,
        applied: Iterable[str] | None = None,
        new: bool = False,
        scope: tuple[str, str] | None = None,
    ) -> None:
        """Store an outcome and its actions (updating earlier ones by mapping).

        `applied` names the mappings handed to the sink in this pass (default: every action that
        was not skipped and is not an earlier success); each counts one attempt. A queued action
        gets its next attempt time, or becomes failed when it has had its last attempt; the
        outcome is updated in place to match. `new`: the event was only just recorded, so it has
        no earlier actions to look up. `scope`: the event's (source, environment), under which
        what it applied is remembered for backfills (see `workbench.targets`).
        """
        now = now or utcnow()
        applied = set(applied) if applied is not None else None
        with self.transaction(conn) as c:
            existing = (
                {}
                if new
                else {
                    row[1]: _Earlier(*row) for row in _ACTIONS_OF_EVENT.fetchall(c, {"event_key": event_id})
                }
            )
            inserts, seen = [], set()
            for position, result in enumerate(outcome.actions):
                before = existing.get(result.mapping)
                attempts = before.attempts if before is not None else 0
                if applied is None:
                    ran = result.status != "skipped" and not (
                        before is not None and before.status == "success" and result.status == "success"
                    )
                else:
                    ran = result.mapping in applied
                if ran:
                    attempts += 1
                next_attempt = None
                if result.status == "queued":
                    if self.retry.exhausted(attempts):
                        result.status = "failed"
                        result.error = f"gave up after {attempts} attempts; last error: {result.error}"
                    else:
                        next_attempt = self.retry.next_attempt(now, attempts, result.retry_after)
                values = action_values(result, position, attempts, next_attempt, now)
                seen.add(result.mapping)
                if before is None:
                    inserts.append({"event_id": event_id, "mapping": result.mapping, **values})
                else:
                    c.execute(_UPDATE_ACTION, {"action_key": before.id, **values})
            if inserts:
                _INSERT_ACTIONS.executemany(c, inserts)
            stale = [row.id for m, row in existing.items() if m not in seen and row.status != "success"]
            if stale:
                c.execute(delete(actions).where(actions.c.id.in_(stale)))
            if outcome.actions and outcome.status in ("processed", "queued", "failed"):
                outcome.status = rolled_up_status(outcome.actions)
            _UPDATE_EVENT.execute(
                c,
                {
                    "event_key": event_id,
                    "new_status": outcome.status,
                    "new_error": outcome.error,
                    "new_updated_at": now,
                    "new_event": outcome.event,
                    "new_key": outcome.idempotency_key,
                    "new_note": outcome.idempotency_note,
                },
            )
            if scope is not None:
                remember(c, scope, applied_by(scope, outcome, event_id, applied), now)

    def record_processed(
        self,
        conn: Connection,
        done: Iterable[tuple[SourceEvent, str, str, Outcome]],
        now: datetime,
        *,
        remember_applied: bool = True,
    ) -> None:
        """Log events whose processing is already settled, with their actions, in `conn`'s
        transaction: what `record_received` then `record_outcome(new=True)` would leave, in two
        multi-row statements (the batches of the backfill and of the write-behind receiver).
        `remember_applied`: remember what they applied (see `record_outcome`'s `scope`)."""
        event_rows, action_rows = [], []
        applied: dict[tuple[str, str], list] = {}
        for event, source, environment, outcome in done:
            if remember_applied:
                applied.setdefault((source, environment), []).extend(
                    applied_by((source, environment), outcome, event.id)
                )
            text, raw = _raw_body(event)
            event_rows.append(
                {
                    "id": event.id,
                    "received_at": event.received_at,
                    "source": source,
                    "environment": environment,
                    "origin": event.origin,
                    "event": outcome.event,
                    "status": outcome.status,
                    "body": text,
                    "body_bytes": raw,
                    "headers": _stored_headers(event.headers),
                    "idempotency_key": outcome.idempotency_key,
                    "idempotency_note": outcome.idempotency_note,
                    "error": outcome.error,
                    "replays": 0,
                    "updated_at": now,
                }
            )
            for position, result in enumerate(outcome.actions):
                attempts = 0 if result.status == "skipped" else 1
                next_attempt = None
                if result.status == "queued":
                    next_attempt = self.retry.next_attempt(now, attempts, result.retry_after)
                action_rows.append(
                    {
                        "event_id": event.id,
                        "mapping": result.mapping,
                        **action_values(result, position, attempts, next_attempt, now),
                    }
                )
        insert_many(conn, events, event_rows)
        insert_many(conn, actions, action_rows)
        for scope, rows in applied.items():
            remember(conn, scope, rows, now)

    def logged_ids(self, conn: Connection, ids: Iterable[str]) -> set[str]:
        """Which of these event ids the log holds."""
        found: set[str] = set()
        for chunk in in_chunks(list(ids)):
            found.update(conn.execute(select(events.c.id).where(events.c.id.in_(chunk))).scalars())
        return found

    def mark_error(self, event_id: str, message: str, now: datetime | None = None) -> None:
        """Record that processing crashed: the event becomes `failed`, so a replay picks it up."""
        with self.transaction() as c:
            c.execute(
                update(events)
                .where(events.c.id == event_id)
                .values(status="failed", error=message, updated_at=now or utcnow())
            )

    def count_replay(self, event_id: str, conn: Connection | None = None) -> None:
        with self.transaction(conn) as c:
            c.execute(update(events).where(events.c.id == event_id).values(replays=events.c.replays + 1))

    # -- reading --------------------------------------------------------------------------

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The whole log entry, or None."""
        return self.get_events([event_id]).get(event_id)

    def get_events(self, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Whole log entries by id, as `get_event` gives them; ids not in the log are left out.

        One read transaction, and two queries per `IN_CHUNK` ids (the events, then their actions),
        however many actions each has.
        """
        ids = list(dict.fromkeys(event_ids))
        entries: dict[str, dict[str, Any]] = {}
        if not ids:
            return entries
        with self._read() as c:
            for chunk in in_chunks(ids):
                found = {
                    row.id: _entry(row) for row in c.execute(select(events).where(events.c.id.in_(chunk)))
                }
                if not found:
                    continue
                for a in c.execute(
                    select(actions)
                    .where(actions.c.event_id.in_(list(found)))
                    .order_by(actions.c.event_id, actions.c.position, actions.c.id)
                ):
                    found[a.event_id]["actions"].append(_action(a))
                entries.update(found)
        return entries

    def raw_body(self, event_id: str) -> bytes | str | None:
        """The body exactly as received (bytes when it was not UTF-8), for replays."""
        with self._read() as c:
            row = c.execute(select(events.c.body, events.c.body_bytes).where(events.c.id == event_id)).first()
        if row is None:
            return None
        return bytes(row.body_bytes) if row.body_bytes is not None else row.body

    def list_events(
        self,
        source: str,
        environment: str,
        status: str | None = None,
        event: str | None = None,
        since: datetime | str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first: id, status, event, received_at, origin."""
        query = select(
            events.c.id, events.c.status, events.c.event, events.c.received_at, events.c.origin
        ).where(events.c.source == source, events.c.environment == environment)
        if status:
            query = query.where(events.c.status == status)
        if event:
            query = query.where(events.c.event == event)
        if since is not None:
            query = query.where(events.c.received_at >= as_datetime(since))
        query = query.order_by(events.c.received_at.desc(), events.c.id.desc()).limit(limit)
        with self._read() as c:
            return [
                {
                    "id": r.id,
                    "status": r.status,
                    "event": r.event,
                    "received_at": iso(r.received_at),
                    "origin": r.origin,
                }
                for r in c.execute(query)
            ]

    def find_events(
        self,
        status: str | Iterable[str],
        source: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Ids of events in `status` (oldest first), for replays by status."""
        statuses = [status] if isinstance(status, str) else list(status)
        query = select(events.c.id).where(events.c.status.in_(statuses))
        if source:
            query = query.where(events.c.source == source)
        if environment:
            query = query.where(events.c.environment == environment)
        query = query.order_by(events.c.received_at, events.c.id)
        if limit:
            query = query.limit(limit)
        with self._read() as c:
            return list(c.execute(query).scalars())

    def status_summary(
        self, source: str, environment: str, days: float = 30, now: datetime | None = None
    ) -> dict[str, Any]:
        """Event counts by status over the last `days`, and when the last event arrived."""
        since = (now or utcnow()) - timedelta(days=days)
        scope = and_(events.c.source == source, events.c.environment == environment)
        with self._read() as c:
            counts = {
                r.status: r.n
                for r in c.execute(
                    select(events.c.status, func.count().label("n"))
                    .where(scope, events.c.received_at >= since)
                    .group_by(events.c.status)
                )
            }
            last = c.execute(select(func.max(events.c.received_at)).where(scope)).scalar()
        return {"counts": counts, "last_received_at": iso(as_datetime(last))}
