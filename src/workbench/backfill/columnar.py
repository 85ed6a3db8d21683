"""Rows planned in bulk: DuckDB computes what the engine would for the ordinary rows of an export.

For the most common shape of config (Knock's Clay default: the body built from columns by the
template with a literal event, and one `users_identify` mapping whose params are `body.<key>`
paths, literals, templates and `properties: "body"`), a row's whole plan is a function of its
cells that SQL can compute: the body, the payload and its hash, the row's identity, the memory
key of its target, the user's record and the row's fingerprint (`fingerprints`). `ColumnarRows`
has DuckDB compute them as it streams the export, and hands the run two kinds of rows, in
export order:

- *ordinary* rows (`OrdinaryRow`): every cell read is blank, a failure mark, `✅ text`, or text
  that starts and ends with no white space and holds no control character but tab and line
  ends; numbers are plain integers; the user id is present and valid for Knock. For those, SQL
  gives byte for byte what `clay.body_builder`, the `Engine` and `targets` give
  (`tests/backfill/test_columnar.py` holds the two paths equal on generated exports);
- every other row (`OtherRow`), with its cells, for the runner's per-row path.

`OrdinaryBatches.write` then applies a batch of ordinary rows by the run's rules (what the run
sent, the memory, which row holds a target) and writes it with a few statements: the users
merged, what each row applied remembered, and one entry in the event log standing for the batch
(a pointer to the rows: the export's path and SHA-256, or the table, and the row numbers; see
`engine.events.BATCH_BODY`). Rows
naming one user are applied in export order whichever path takes them (the runner writes the
pending ordinary rows before a per-row row that may name one of their users). Rows that fail are
never ordinary: they keep their whole entry in the log, to be shown and replayed.

Used only on a SQLite store with the local sink, for a whole export DuckDB reads (a CSV file or
a loaded table: `RowSource.in_duckdb`; no `--limit`, no `--no-bulk`), and only when
`ColumnarPlan.for_run` finds the config of that shape; otherwise (and within `disabled()`, or
without this module) every row takes the per-row path, with the same results.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from ..actions import MAX_USER_ID, USER_FIELDS
from ..clay.bodies import FAILURE_MARKS, template_column
from ..clay.loading import quote
from ..engine import BATCH_BODY, ActionResult, Outcome, SourceEvent, new_event_ids, row_identity
from ..jsontext import compact_json, json_text
from ..paths import MISSING
from ..specs import Literal, PathValue, Template
from ..store import local_users
from ..store.applied import mark_rows, remember, remember_rows, remembered
from .fingerprints import BulkFingerprints, csv_from, sql_literal

_enabled = True


@contextmanager
def disabled() -> Iterator[None]:
    """Within it, every row takes the per-row path (the plain twin of this module, for tests and
    `bench/backfill.py`)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


FETCH = 2000
AHEAD = 4  # chunks of FETCH rows computed ahead of the run
# DuckDB's share of a run: its buffers (the CSV reader's above all) within this memory, on this
# many threads (the run's own thread writes meanwhile), so a big export keeps a small footprint.
DUCKDB_MEMORY = "128MB"
CSV_BUFFER = 4 << 20
DUCKDB_THREADS = 2

# Characters a Python `str.isspace()` may be true for, and more (controls, format characters,
# the variation selector of a mark): a cell starting or ending with one is not ordinary.
_SPACE = (
    r"\x00-\x20\x7f-\xa0\x{1680}\x{180e}\x{2000}-\x{200f}\x{2028}-\x{202f}\x{205f}-\x{206f}"
    r"\x{3000}\x{fe0f}\x{feff}"
)
# Where Clay's status marks start (`clay.bodies`), and the blocks around them.
_MARKS = r"\x{2600}-\x{27bf}\x{1f6ab}"
_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"
# Controls JSON writes as \uXXXX (tab and line ends aside): text holding one is left to Python.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _json_text(sql: str) -> str:
    """A JSON string of the SQL text `sql` (NULL for NULL), as `json.dumps(..., ensure_ascii=False)`
    writes it, for text with no control character but tab, line ends, backspace and form feed
    (DuckDB's `to_json` writes those, quotes and backslashes as Python does)."""
    return f"to_json({sql})::VARCHAR"


def _object(members: Iterable[tuple[str, str]]) -> str:
    """A JSON object from (key, SQL giving its value's JSON text or NULL: left out), in order."""
    parts = [f"'{_quoted_key(key)}:' || ({value})" for key, value in members]
    return f"concat('{{', concat_ws(',', {', '.join(parts)}), '}}')" if parts else "'{}'"


def _quoted_key(key: str) -> str:
    return compact_json(key).decode().replace("'", "''")


@dataclass(frozen=True)
class _Key:
    """One body key: the SQL of its value's JSON text (NULL when the body leaves it out), whether
    that value is text, and the SQL of the value as `specs.to_text` writes it (for templates)."""

    value: str
    text: bool
    raw: str


class ColumnarPlan:
    """The SQL of one run's ordinary rows (see the module), for a config of the shape it takes."""

    def __init__(self, backfill: Any, columns: Sequence[str], reads: Sequence[int], event: str, mapping):
        self.backfill = backfill
        self.columns = list(columns)
        self.reads = list(reads)
        self.event = event
        self.mapping = mapping
        self.numbers: list[int] = []  # the cells read as numbers
        source, environment = backfill.scope
        self.scope_text = row_identity(source, environment, event, "")[: -len('""]')]

    # -- which runs ----------------------------------------------------------------------

    @classmethod
    def for_run(cls, backfill: Any, columns: Sequence[str], reads: Sequence[int]) -> ColumnarPlan | None:
        """The plan for `backfill`'s run over an export with `columns`, or None when its config
        is not of the shape this module computes (the per-row path then takes every row)."""
        config, env = backfill.config, backfill.env
        template = backfill.template
        if not _enabled or template is None or env.idempotency is not None or backfill.retrigger:
            return None
        if config.event_type_path.text != "body.event" or backfill.headers:
            return None
        event = backfill.event_override
        spec = template.get("event")
        if event is None:
            if spec is not None and not (isinstance(spec, Mapping) and isinstance(spec.get("value"), str)):
                return None  # the event read from a column (rows may differ), or not text
            event = backfill.default_event
        if not isinstance(event, str) or event not in env.active_events:
            return None
        mappings = env.mappings_for(event)
        if len(mappings) != 1:
            return None
        mapping = mappings[0]
        if mapping.action != "users_identify" or not mapping.active or mapping.when:
            return None
        plan = cls(backfill, columns, reads, event, mapping)
        try:
            plan.keys = plan._body_keys()
            plan.slots = {key: f"k_{i}" for i, key in enumerate(plan.keys)}  # their SQL columns
            plan.params = plan._params()
        except _NotColumnar:
            return None
        return plan

    def _body_keys(self) -> dict[str, _Key]:
        """{body key: its value} as `clay.body_builder` builds the body (a later key of the
        template over an earlier one; the run's event over the template's)."""
        index: dict[str, int] = {}
        for i, column in enumerate(self.columns):
            index.setdefault(column, i)
        keys: dict[str, _Key] = {}
        for key, spec in self.backfill.template.items():
            column = template_column(spec)
            if column is None:
                if not (isinstance(spec, Mapping) and "value" in spec):
                    continue
                keys[key] = _static(spec["value"])
                continue
            if column not in index:
                continue
            as_ = spec.get("as") if isinstance(spec, Mapping) else None
            cell = f"c{index[column]}"
            if as_ is None:
                keys[key] = _Key(_json_text(_clean(cell)), True, _clean(cell))
            elif as_ == "number":
                keys[key] = _Key(_clean(cell), False, _clean(cell))
                self.numbers.append(index[column])
            else:
                raise _NotColumnar
        keys["event"] = _static(self.event)
        return keys

    def _params(self) -> dict[str, tuple[str, str | None]]:
        """{param: (SQL of its JSON text or NULL, the body key it reads or None)}."""
        params: dict[str, tuple[str, str | None]] = {}
        for name, spec in self.mapping.params.items():
            if isinstance(spec, Literal):
                if not isinstance(spec.value, str) or not spec.value:
                    raise _NotColumnar
                params[name] = (sql_literal(compact_json(spec.value).decode()), None)
                continue
            if isinstance(spec, Template):
                rendered = self._template(spec)
                if rendered is not None:
                    params[name] = (rendered, None)
                continue
            if not isinstance(spec, PathValue) or spec.as_ is not None or spec.region is not None:
                raise _NotColumnar
            path = spec.path
            if spec.default is not MISSING or path.wildcard or path.root != "body":
                raise _NotColumnar
            if name == "properties":
                if path.steps:
                    raise _NotColumnar
                params[name] = ("body_json", None)
                continue
            if len(path.steps) != 1 or not isinstance(path.steps[0], str):
                raise _NotColumnar
            key = self.keys.get(path.steps[0])
            if key is None:
                continue  # no body has it: the param is left out of every payload
            if not key.text:
                raise _NotColumnar  # a number where Knock wants text: the engine converts it
            params[name] = (self.slots[path.steps[0]], path.steps[0])
        if "id" not in params or params["id"][1] is None:
            raise _NotColumnar
        if template_column(self.backfill.template.get(params["id"][1])) is None:
            raise _NotColumnar  # a literal user id
        return params

    def _template(self, spec: Template) -> str | None:
        """The SQL of a template param's JSON text, as `specs.Template` renders it (NULL when a
        placeholder or the whole text is empty); None when no body has one of its keys."""
        pieces = []
        for part in spec.parts:
            if isinstance(part, str):
                if _CONTROLS.search(part):
                    raise _NotColumnar
                pieces.append(sql_literal(part))
                continue
            if (
                part.wildcard
                or part.root != "body"
                or len(part.steps) != 1
                or not isinstance(part.steps[0], str)
            ):
                raise _NotColumnar
            key = self.keys.get(part.steps[0])
            if key is None:
                return None  # it resolves to nothing for every row: the param is left out
            pieces.append(f"({key.raw})")
        return _json_text(f"NULLIF({' || '.join(pieces) or chr(39) * 2}, '')")

    # -- the query -------------------------------------------------------------------------

    def query(self, source: str, numbered: bool = False) -> str:
        """Every row of `source` (the export, columns c0…, and its row number `n` when
        `numbered`), in order: whether it is ordinary, the
        user it names (for the others, a wider key: `_group`); for ordinary rows the user's record,
        the payload hash, the memory key, the fingerprint and the target's first 16 hex digits;
        for the others their cells."""
        slots = self.slots
        cells = ", ".join(f"c{i}" for i in range(len(self.columns)))
        body = _object(sorted(slots.items()))
        payload = _object(sorted((name, value) for name, (value, _) in self.params.items()))
        record = self._record(slots)
        id_key = self.params["id"][1]
        id_cell = self._cell_of(id_key)
        fingerprint = BulkFingerprints(self.columns, self.reads).expression([f"c{i}" for i in self.reads])
        read = self.reads
        # One match over the cells read, joined by the unit separator (which no ordinary cell holds).
        pattern = chr(0x1F).join(_NUMBER if i in self.numbers else _TEXT_CELL for i in read)
        joined = ", ".join(f"coalesce(c{i}, '')" for i in read)
        ordinary = " AND ".join(
            [
                f"regexp_full_match(concat_ws(chr(31), {joined}), {sql_literal(pattern)})",
                "uid IS NOT NULL",
                f"strlen(uid) <= {MAX_USER_ID}",
                "NOT contains(uid, '/') AND NOT contains(uid, '#')",
                f"strlen(body_json) < {_PROPERTIES_LIMIT}",
            ]
        )
        return f"""
            WITH rows AS (SELECT {cells}{", n" if numbered else ""} FROM {source}),
            keyed AS (
                SELECT *, {", ".join(f"{sql.value} AS {slots[key]}" for key, sql in self.keys.items())}
                FROM rows
            ),
            planned AS (
                SELECT *, {_clean(id_cell)} AS uid, {body} AS body_json FROM keyed
            ),
            checked AS (SELECT *, coalesce({ordinary}, false) AS ordinary FROM planned),
            targeted AS (
                SELECT *, CASE WHEN ordinary THEN sha256(concat('["user",', {_json_text("uid")}, ']')) END
                    AS target
                FROM checked
            )
            SELECT ordinary,
                   CASE WHEN ordinary THEN uid ELSE {_group(id_cell)} END,
                   CASE WHEN ordinary THEN {record} END,
                   CASE WHEN ordinary THEN sha256(concat('["users_identify",', {payload}, ']')) END,
                   CASE WHEN ordinary THEN sha256(concat(
                       target, chr(10), {sql_literal(self.scope_text)}, '"', sha256(body_json), '"]')) END,
                   CASE WHEN ordinary THEN {fingerprint} END,
                   CASE WHEN ordinary THEN left(target, 16) END,
                   CASE WHEN NOT ordinary THEN [{cells}] END,
                   {"n" if numbered else "NULL"}
            FROM targeted"""

    def _record(self, slots: Mapping[str, str]) -> str:
        """The user's record as the local sink writes a new one (`sinks.local._attributes`): the
        properties in the body's order, a named param over the property of its name where that
        is present, else after them in the order of USER_FIELDS."""
        named = {name: self.params[name][0] for name in USER_FIELDS if name in self.params}
        properties = [key for key in self.keys if key != "id"] if "properties" in self.params else []
        members = []
        for key in properties:
            value = (
                slots[key]
                if key not in named
                else f"CASE WHEN {slots[key]} IS NOT NULL THEN coalesce({named[key]}, {slots[key]}) END"
            )
            members.append((key, value))
        for name, value in named.items():
            if name in properties:
                value = f"CASE WHEN {slots[name]} IS NULL THEN {value} END"
            members.append((name, value))
        return _object(members)

    def _cell_of(self, key: str) -> str:
        spec = self.backfill.template[key]
        return f"c{self.columns.index(template_column(spec))}"


class _NotColumnar(Exception):
    pass


_PROPERTIES_LIMIT = 256 * 1024 // 2  # far under Knock's limit: the engine measures what is near it


def _static(value: Any) -> _Key:
    """A literal of the template or config, when SQL can write its JSON as Python does."""
    if type(value) is str and value:
        return _Key(sql_literal(compact_json(value).decode()), True, sql_literal(value))
    if type(value) is int and not isinstance(value, bool) and abs(value) < 10**15:
        return _Key(f"'{value}'", False, f"'{value}'")
    raise _NotColumnar


def _clean(cell: str) -> str:
    """`clay.bodies.clean_cell` of an ordinary cell (see `_cell_ok`): NULL for a blank or a
    failure mark, the text after `✅` and its spaces, or the cell as it is."""
    fails = " OR ".join(f"starts_with({cell}, {sql_literal(mark[0])})" for mark in FAILURE_MARKS)
    return (
        f"CASE WHEN {cell} IS NULL OR {cell} = '' OR {fails} THEN NULL "
        f"WHEN starts_with({cell}, '✅') THEN NULLIF(trim(substr({cell}, 2), ' '), '') "
        f"ELSE {cell} END"
    )


# A cell read, as `regexp_full_match` patterns (RE2): blank, a failure mark and anything, text
# with no space or mark at its edges and no control character but tab and line ends, or `✅`,
# spaces and such text. Numbers: plain integers (`specs.coerce` gives the same digits back).
_FAILED = "(?:" + "|".join(mark[0] for mark in FAILURE_MARKS) + ")[^\\x1f]*"
_EDGE = f"[^{_SPACE}{_MARKS}]"
_TEXT = f"{_EDGE}(?:[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]*{_EDGE})?"
_TEXT_CELL = f"(?:|{_FAILED}|{_TEXT}|✅ *(?:{_TEXT})?)"
_NUMBER = f"(?:|{_FAILED}|{_INTEGER}|✅ *(?:{_INTEGER})? *)"


def _group(cell: str) -> str:
    """A key two rows naming the same user share: marks and spaces around the id cell dropped.
    An ordinary id cell has none, so its key is its user id."""
    edge = f"[{_SPACE}{_MARKS}]"
    return f"NULLIF(regexp_replace({cell}, '^{edge}+|{edge}+$', '', 'g'), '')"


# -- reading ------------------------------------------------------------------------------


@dataclass(slots=True)
class OrdinaryRow:
    number: int
    user_id: str
    record: str  # the user's record (JSON text): what the local sink merges
    payload_hash: str
    memory_key: str
    fingerprint: str
    target: int  # the target cut to 64 bits, as a run tracks what it sent (`Backfill._sent`)
    sent: int  # the payload hash, cut alike


# The `group` of a row that may name any user.
EVERY = object()


@dataclass(slots=True)
class OtherRow:
    """A row for the per-row path: its number, cells, and `_group` key of the user it may name
    (EVERY when it is not known)."""

    number: int
    cells: list[Any]
    group: str | None


class DuckSource:
    """Where DuckDB reads an export's rows: `sql`, a FROM clause giving the columns as c0, c1…
    (and the row number as `n` when `numbered`; else rows come in order, numbered from 1),
    `connect()`, a DuckDB connection to run it on, and `pointer()`, what a batch's log entry
    names as the rows' place."""

    def __init__(self, sql: str, connect: Callable[[], Any], numbered: bool, pointer: Callable[[], dict]):
        self.sql, self.connect, self.numbered, self.pointer = sql, connect, numbered, pointer


def csv_source(path: str | os.PathLike, columns: Sequence[str]) -> DuckSource:
    """A CSV export, read by a DuckDB of its own as `ExportReader` reads it; batch entries name
    its path and SHA-256 (taken
    in a thread of its own meanwhile: hashlib lets go of Python's lock)."""
    digest: list[str] = []
    hashing = threading.Thread(target=lambda: digest.append(file_sha256(path)), daemon=True)
    hashing.start()

    def pointer() -> dict:
        hashing.join()
        if not digest:
            raise OSError(f"cannot read {os.fspath(path)!r} to take its SHA-256")
        return {"export": os.fspath(path), "sha256": digest[0]}

    def connect():
        return duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "threads": DUCKDB_THREADS})

    # Read in buffers of CSV_BUFFER bytes: the first rows come sooner and take less memory than
    # with DuckDB's default (a longer row makes DuckDB fail, and the export reader takes over).
    return DuckSource(csv_from(path, len(columns), buffer_size=CSV_BUFFER), connect, False, pointer)


def table_source(con: Any, table: str, columns: Sequence[str]) -> DuckSource:
    """A table `workbench load` filled, read in `_row_number` order on a cursor of `con` (its
    database's settings); batch entries name the table."""
    picks = ", ".join(f"{quote(c)} AS c{i}" for i, c in enumerate(columns))
    sql = f"(SELECT _row_number AS n, {picks} FROM {quote(table)} ORDER BY _row_number)"
    return DuckSource(sql, con.cursor, True, lambda: {"table": table})


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ColumnarRows:
    """The rows of an export as `ColumnarPlan` splits them, streamed in export order:
    `OrdinaryRow`s and `OtherRow`s. Should DuckDB fail to read the export (a line it cannot
    parse, memory), the rows it did not give come from `rows` (the source's own reading, which
    names a bad line precisely), every one for the per-row path."""

    def __init__(self, plan: ColumnarPlan, source: DuckSource, rows: Callable[[], Iterator] | None = None):
        self.plan, self.source, self.rows = plan, source, rows

    def __iter__(self) -> Iterator[OrdinaryRow | OtherRow]:
        """DuckDB computes and converts the rows in a thread of its own, a few chunks ahead: the
        run writes a batch (SQLite, without Python's lock) while the next ones are computed."""
        chunks: queue.Queue = queue.Queue(maxsize=AHEAD)
        stop = threading.Event()
        con = self.source.connect()
        thread = threading.Thread(target=self._compute, args=(con, chunks, stop), daemon=True)
        thread.start()
        last = 0
        try:
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, duckdb.Error) and self.rows is not None:
                    for number, cells in self.rows():
                        if number > last:
                            yield OtherRow(number, cells, EVERY)
                    return
                if isinstance(chunk, BaseException):
                    raise chunk
                yield from chunk
                last = chunk[-1].number
        finally:
            stop.set()
            con.interrupt()
            while thread.is_alive():  # let it see `stop` even if it waits on a full queue
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    thread.join(0.05)
            con.close()

    def _compute(self, con, chunks: queue.Queue, stop: threading.Event) -> None:
        try:
            cursor = con.execute(self.plan.query(self.source.sql, self.source.numbered))
            # Rows come in the file's order (DuckDB preserves it where a query has no ORDER BY),
            # numbered from 1 as `ExportReader` numbers them, unless the source numbers them.
            numbers = itertools.count(1)
            while not stop.is_set() and (fetched := cursor.fetchmany(FETCH)):
                chunk = [
                    OrdinaryRow(
                        number or n,
                        who,
                        record,
                        digest,
                        key,
                        fingerprint,
                        int(target, 16),
                        int(digest[:16], 16),
                    )
                    if ordinary
                    else OtherRow(number or n, ["" if c is None else c for c in cells], who)
                    # (`fetched` first: zip stops at its end without taking one more number)
                    for (ordinary, who, record, digest, key, fingerprint, target, cells, number), n in zip(
                        fetched, numbers, strict=False
                    )
                ]
                chunks.put(chunk)
            chunks.put(None)
        except BaseException as exc:  # handed to the run, which raises it
            chunks.put(exc)


# -- writing ------------------------------------------------------------------------------


def _ranges(numbers: list[int]) -> list[list[int]]:
    """Row numbers as [first, last] runs."""
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


class OrdinaryBatches:
    """A run's ordinary rows (`ColumnarRows`), written a batch at a time in the run's transaction:
    the users merged, what each row applied remembered, one log entry for the batch."""

    def __init__(self, backfill: Any, plan: ColumnarPlan, source: DuckSource):
        self.backfill, self.plan, self.source = backfill, plan, source

    def rows(self, fallback: Callable[[], Iterator] | None = None) -> Iterator[OrdinaryRow | OtherRow]:
        return iter(ColumnarRows(self.plan, self.source, fallback))

    def write(self, conn, rows: list[OrdinaryRow], now) -> dict[str, int]:
        """Apply and remember one batch of ordinary rows, in export order, as `Backfill._compare`,
        `_apply` and `_write` would; returns the rows per category."""
        backfill = self.backfill
        scope, store, sent, valid = backfill.scope, backfill.store, backfill._sent, backfill._valid
        # Read even with --full: the targets found are upserted, the others inserted (`remember`).
        memory = remembered(conn, scope, [r.memory_key for r in rows])
        known = set(memory)
        if backfill.full:
            memory = {}
        todo, same, quiet = [], [], 0
        # Memory key: the fingerprint of the batch's last row that applied it or found it unchanged.
        claims: dict[str, str] = {}
        for row in rows:
            earlier = sent.get(row.target)
            # Once this run sent something else to a target, later rows send to it again.
            if backfill.full or (earlier is not None and earlier != row.sent):
                pass
            elif row.fingerprint in valid:
                quiet += 1  # remembered: its target holds its payload, nothing is written
                continue
            elif memory.get(row.memory_key) == row.payload_hash:
                same.append(row)
                claims[row.memory_key] = row.fingerprint
                continue
            todo.append(row)
            sent[row.target] = row.sent
            memory[row.memory_key] = row.payload_hash  # a row repeated is unchanged the second time
            claims[row.memory_key] = row.fingerprint
        if todo:
            event_id = new_event_ids(1, now)[0]
            store.patch_records(conn, local_users, [(r.user_id, r.record) for r in todo], now)
            remember(
                conn,
                scope,
                [(r.memory_key, r.payload_hash, event_id, r.fingerprint) for r in todo],
                now,
                known,
            )
            store.record_processed(conn, [self._entry(event_id, todo, now)], now, remember_applied=False)
        backfill.forget_other_configs(conn)
        mark_rows(
            conn,
            scope,
            [(r.memory_key, r.fingerprint) for r in same if claims[r.memory_key] == r.fingerprint],
        )
        held = [(r.fingerprint, "done") for r in rows if claims.get(r.memory_key) == r.fingerprint]
        remember_rows(conn, scope, backfill.digest, held)
        return {"applied": len(todo), "unchanged": len(same) + quiet}

    def _entry(self, event_id: str, rows: list[OrdinaryRow], now) -> tuple:
        """The event-log entry standing for a batch: a pointer to the rows in the export."""
        backfill, mapping = self.backfill, self.plan.mapping
        ranges = _ranges([r.number for r in rows])
        pointer = {
            BATCH_BODY: {
                **self.source.pointer(),
                "rows": ranges,
                "applied": len(rows),
                "note": "rows applied in bulk; the export holds their bodies, the log keeps failed rows whole",
            }
        }
        result = ActionResult(
            mapping.action,
            "success",
            mapping.key,
            params=mapping.raw.get("params"),
            result={"applied": len(rows), "rows": ranges},
        )
        outcome = Outcome("processed", self.plan.event, actions=[result], body=pointer)
        event = SourceEvent(
            json_text(pointer), backfill.headers, origin="backfill", id=event_id, received_at=now
        )
        return event, *backfill.scope, outcome
