"""The SQL of a run's ordinary rows: which configs and cells it takes, and what DuckDB computes for
them (see the package)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ...actions import MAX_USER_ID, USER_FIELDS
from ...clay.bodies import FAILURE_MARKS, template_column
from ...engine import SourceEvent, row_identity
from ...jsontext import compact_json
from ...paths import MISSING
from ...specs import Literal, PathValue, Template
from ..fingerprints import BulkFingerprints, sql_literal
from ..rules import failed_reason

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
        # A row that fails for want of a user id is logged with its body in the template's order:
        # SQL writes that order as `clay.body_builder` does unless the event comes from a column.
        plan.fails_in_bulk = spec is None or (isinstance(spec, Mapping) and "value" in spec)
        try:
            plan.keys = plan._body_keys()
            plan.slots = {key: f"k_{i}" for i, key in enumerate(plan.keys)}  # their SQL columns
            plan.params = plan._params()
        except _NotColumnar:
            return None
        # How the engine fails a row whose user id is blank, whatever else the row holds: the one
        # required param of users_identify resolves to nothing (asked of a body with no other key).
        failed = backfill.engine.plan(SourceEvent({"event": event}, backfill.headers, origin="backfill"))
        (result,) = failed.outcome.actions
        plan.failure, plan.reason = result.error, failed_reason(failed.outcome)
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

    def query(self, source: str, numbered: bool = False, every_cell: bool = True) -> str:
        """Every row of `source` (the export, columns c0…, and its row number `n` when
        `numbered`), in order: its kind (`ORDINARY`, `FAILED` or NULL for the others), the user it
        names (for the others, a wider key: `_group`); for ordinary rows the user's record, the
        payload hash, the memory key, the fingerprint and the target's first 16 hex digits; for
        failed rows the body, the payload (JSON text, in the engine's order), the idempotency
        key and the fingerprint; for the others and the failed rows their cells. Without
        `every_cell`, only the cells the template reads (`reads`, in order), and only for the
        others: DuckDB then leaves the other columns unread."""
        slots = self.slots
        cells = ", ".join(f"c{i}" for i in range(len(self.columns)))
        given = cells if every_cell else ", ".join(f"c{i}" for i in self.reads)
        with_cells = f"kind IS DISTINCT FROM {ORDINARY}" if every_cell else "kind IS NULL"
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
        cells_ok = f"regexp_full_match(concat_ws(chr(31), {joined}), {sql_literal(pattern)})"
        small = f"strlen(body_json) < {_PROPERTIES_LIMIT}"
        ordinary = " AND ".join(
            [
                cells_ok,
                "uid IS NOT NULL",
                f"strlen(uid) <= {MAX_USER_ID}",
                "NOT contains(uid, '/') AND NOT contains(uid, '#')",
                small,
            ]
        )
        failed = f"{cells_ok} AND uid IS NULL AND {small}" if self.fails_in_bulk else "false"
        # The failed rows' body in the template's order, and their payload in the params'.
        ordered = _object((key, slots[key]) for key in self.keys)
        resolved = _object(
            (name, "body_text" if value == "body_json" else value) for name, (value, _) in self.params.items()
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
            checked AS (
                SELECT *, CASE WHEN coalesce({ordinary}, false) THEN {ORDINARY}
                               WHEN coalesce({failed}, false) THEN {FAILED} END AS kind
                FROM planned
            ),
            targeted AS (
                SELECT *,
                    CASE WHEN kind = {ORDINARY} THEN sha256(concat('["user",', {_json_text("uid")}, ']')) END
                    AS target,
                    CASE WHEN kind = {FAILED} THEN {ordered} END AS body_text
                FROM checked
            )
            SELECT kind,
                   CASE WHEN kind = {ORDINARY} THEN uid WHEN kind IS NULL THEN {_group(id_cell)} END,
                   CASE WHEN kind = {ORDINARY} THEN {record} ELSE body_text END,
                   CASE WHEN kind = {ORDINARY} THEN sha256(concat('["users_identify",', {payload}, ']'))
                        WHEN kind = {FAILED} THEN {resolved} END,
                   CASE WHEN kind = {ORDINARY} THEN sha256(concat(
                       target, chr(10), {sql_literal(self.scope_text)}, '"', sha256(body_json), '"]'))
                        WHEN kind = {FAILED} THEN sha256(body_json) END,
                   CASE WHEN kind IS NOT NULL THEN {fingerprint} END,
                   CASE WHEN kind = {ORDINARY} THEN left(target, 16) END,
                   CASE WHEN {with_cells} THEN [{given}] END,
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


# A row's kind, as the query gives it (NULL: the per-row path's).
ORDINARY, FAILED = 1, 2


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
