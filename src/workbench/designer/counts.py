"""Failure counts over a whole export table, fast enough to refresh on every widget change.

Running the engine on 50,000 rows takes about half a second, so the counts decompose the work
instead, using the core's own functions: a parameter or condition depends only on the body keys
its paths read, so each is evaluated once per distinct value of those keys and the verdicts
are broadcast back to the rows with numpy. Verdicts are cached per
spec, so a widget change re-evaluates only what it changed. Paths that read the whole body
(`"properties": "body"`) are judged on the first row; the per-row preview checks their size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..actions import ACTION_TYPES, normalize
from ..config import ActionMapping, SourceConfig
from ..errors import CoercionError
from ..paths import MISSING, Path, is_nothing
from .draft import template_column
from .table import ExportTable

WHOLE = object()  # marks a path that needs the whole body

OK, NOTHING, INVALID = 0, 1, 2


@dataclass(frozen=True)
class Unbuildable:
    """A cell the body template cannot turn into a body value (the row would be invalid)."""

    message: str


@dataclass(frozen=True)
class Verdicts:
    codes: np.ndarray  # per row: OK, NOTHING or INVALID
    inverse: np.ndarray  # per row: the index of its distinct input in `messages`
    messages: list[str | None]

    def example(self, mask: np.ndarray) -> str | None:
        """The message of the first row selected by `mask`."""
        return self.messages[int(self.inverse[int(np.argmax(mask))])] if mask.any() else None


@dataclass
class ParamCount:
    param: str
    source: str  # how the param is read, e.g. path `body.email` ← column "Work Email"
    required: bool
    nothing: int = 0  # rows where a required param resolves to nothing
    invalid: int = 0  # rows where the value cannot be coerced or breaks a Knock limit
    example: str | None = None


# What `MappingCount.to_dict` gives as it is, in this order (then `succeeded` and `params`).
_SHOWN = ("action", "mapping", "rows", "event_rows", "active", "invalid_rows", "skipped", "failed")


@dataclass
class MappingCount:
    action: str
    mapping: str
    rows: int  # rows of the table
    event_rows: int  # rows whose body carries this mapping's event
    active: bool = True
    invalid_rows: int = 0  # rows whose body cannot be built: invalid, no action runs
    invalid_example: str | None = None
    skipped: int = 0
    failed: int = 0
    params: list[ParamCount] = field(default_factory=list)

    @property
    def would_run(self) -> int:
        return self.event_rows - self.skipped

    def messages(self) -> list[str]:
        """One sentence per problem, e.g. `412 of 50,000 rows have no `id` …: they would fail …`."""
        out = []
        for p in self.params:
            if p.nothing:
                out.append(
                    f"{p.nothing:,} of {self.rows:,} rows have no `{p.param}` ({p.source}): "
                    f"they would fail {self.action}"
                )
            if p.invalid:
                out.append(
                    f"{p.invalid:,} of {self.rows:,} rows have an invalid `{p.param}` ({p.source}; "
                    f"e.g. {p.example}): they would fail {self.action}"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _SHOWN}
        out["succeeded"] = self.would_run - self.failed
        out["params"] = [p.__dict__.copy() for p in self.params]
        return out


def _needs(path: Path) -> Any:
    """The top-level body key a path reads, WHOLE for the whole body, None for headers."""
    if path.root != "body":
        return None  # exports carry no headers: such paths resolve to nothing, as in a backfill
    first = path.first_key
    return first if first is not None else WHOLE


class TableEvaluator:
    """Evaluates mappings over every row of an `ExportTable`, with caches across refreshes."""

    def __init__(self, table: ExportTable, row_to_body: Callable[..., dict]):
        self.table = table
        self.row_to_body = row_to_body
        self._keys: dict[tuple, tuple[np.ndarray, list]] = {}
        self._verdicts: dict[tuple, Verdicts] = {}
        self._first_body: dict[str, dict] = {}

    # -- body values, one key at a time ------------------------------------------------

    def key_values(self, key: str, template: Mapping[str, Any], event: str) -> tuple[np.ndarray, list]:
        """(codes per row, distinct body values) of `body[key]` over the whole table."""
        entry = template.get(key)
        column = template_column(entry) if entry is not None else None
        cache_key = (key, json.dumps(entry, sort_keys=True, default=str), event)
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        n = self.table.rows
        if column is None or column not in self.table.columns:
            # A literal (or a key the template does not fill, or the event default): one value.
            body = self.row_to_body({}, {key: entry} if entry is not None else {}, event)
            result = (np.zeros(n, dtype=np.intp), [body.get(key, MISSING)])
        else:
            # A dict keeps None apart from every text (pandas would turn it into NaN).
            index: dict[Any, int] = {}
            codes = np.fromiter(
                (index.setdefault(c, len(index)) for c in self.table.cells(column)), np.intp, n
            )
            values = [self._cell_value(column, cell, key, entry, event) for cell in index]
            result = (codes, values)
        self._keys[cache_key] = result
        return result

    def _cell_value(self, column: str, cell: Any, key: str, entry: Any, event: str) -> Any:
        try:
            return self.row_to_body({column: cell}, {key: entry}, event).get(key, MISSING)
        except CoercionError as exc:
            return Unbuildable(str(exc))

    def unbuildable(self, template: Mapping[str, Any], event: str) -> tuple[np.ndarray, str | None]:
        """Rows whose body cannot be built (a cell that its template `as` cannot read), and why."""
        bad = np.zeros(self.table.rows, dtype=bool)
        example = None
        for key, entry in template.items():
            if not (isinstance(entry, Mapping) and entry.get("as")):
                continue
            codes, values = self.key_values(key, template, event)
            flags = np.array([isinstance(v, Unbuildable) for v in values], dtype=bool)
            if flags.any():
                rows = flags[codes]
                if example is None and rows.any():
                    example = values[int(codes[int(np.argmax(rows))])].message
                bad |= rows
        return bad, example

    def _first_row_body(self, template: Mapping[str, Any], event: str) -> dict:
        cache_key = json.dumps([template, event], sort_keys=True, default=str)
        body = self._first_body.get(cache_key)
        if body is None:
            body = {}
            for row in self.table.sample(20):
                try:
                    body = self.row_to_body(row, template, event)
                    break
                except CoercionError:
                    continue
            self._first_body[cache_key] = body
        return body

    # -- one verdict per distinct input, broadcast to the rows -------------------------

    def verdicts(self, paths, judge, cache_key: tuple, template: Mapping[str, Any], event: str) -> Verdicts:
        """`judge(context) -> (code, message)` over every row, evaluated once per distinct input."""
        needs = {_needs(p) for p in paths}
        # Only the template entries this judgement reads are part of its cache key, so adding a
        # column to the template does not invalidate the verdicts of the other parameters.
        read = template if WHOLE in needs else {k: template.get(k) for k in needs if k is not None}
        full_key = (cache_key, json.dumps(read, sort_keys=True, default=str), event)
        cached = self._verdicts.get(full_key)
        if cached is not None:
            return cached
        n = self.table.rows
        if WHOLE in needs:
            code, message = judge({"body": self._first_row_body(template, event), "headers": {}})
            result = Verdicts(np.full(n, code, dtype=np.int8), np.zeros(n, dtype=np.intp), [message])
            self._verdicts[full_key] = result
            return result
        keys = sorted(k for k in needs if k is not None)
        columns = [self.key_values(k, template, event) for k in keys]
        if not keys:
            inverse = np.zeros(n, dtype=np.intp)
            combos: list[tuple] = [()]
        elif len(keys) == 1:
            inverse = columns[0][0]
            combos = []  # evaluated below, value by value
        else:
            stacked = np.stack([c[0] for c in columns], axis=1)
            unique_rows, inverse = np.unique(stacked, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            combos = [tuple(r) for r in unique_rows]
        codes = np.empty(len(columns[0][1]) if len(keys) == 1 else len(combos), dtype=np.int8)
        messages: list[str | None] = []
        if len(keys) == 1:
            # The common case (one column behind the spec), without the tuple bookkeeping.
            key = keys[0]
            for i, value in enumerate(columns[0][1]):
                body = {} if value is MISSING or isinstance(value, Unbuildable) else {key: value}
                codes[i], message = judge({"body": body, "headers": {}})
                messages.append(message)
        for i, combo in enumerate(combos):
            body = {}
            for (_, values), key, index in zip(columns, keys, combo, strict=True):
                value = values[index]
                if value is not MISSING and not isinstance(value, Unbuildable):
                    body[key] = value
            codes[i], message = judge({"body": body, "headers": {}})
            messages.append(message)
        result = Verdicts(codes[inverse] if n else np.zeros(0, dtype=np.int8), inverse, messages)
        self._verdicts[full_key] = result
        return result

    # -- the counts -------------------------------------------------------------------

    def counts(self, config: SourceConfig, environment: str, event: str) -> list[MappingCount]:
        """Per mapping of `event` (execution order): rows that would fail or be skipped, and why."""
        env = config.environment(environment)
        template = dict(config.body_template or {})
        n = self.table.rows
        event_path = config.event_type_path
        event_codes = self.verdicts(
            (event_path,),
            lambda ctx: (OK if event_path.resolve(ctx) == event else NOTHING, None),
            ("event", event_path.text, event),
            template,
            event,
        )
        unbuildable, example = self.unbuildable(template, event)
        carries = (event_codes.codes == OK) & ~unbuildable
        event_rows = int(carries.sum())
        out = []
        for mapping in env.mappings_for(event):
            count = MappingCount(mapping.action, mapping.key, n, event_rows, active=mapping.active)
            count.invalid_rows, count.invalid_example = int(unbuildable.sum()), example
            out.append(count)
            if not mapping.active:
                count.skipped = event_rows
                continue
            runs = carries.copy()
            for condition in mapping.when:
                verdict = self.verdicts(
                    (condition.path,),
                    lambda ctx, c=condition: (OK if c.evaluate(ctx).ok else NOTHING, None),
                    ("when", repr(condition)),
                    template,
                    event,
                )
                runs &= verdict.codes == OK
            count.skipped = event_rows - int(runs.sum())
            failing = np.zeros(n, dtype=bool)
            for name, spec in mapping.params.items():
                required = name in ACTION_TYPES[mapping.action].required
                verdict = self.verdicts(
                    tuple(spec.paths),
                    lambda ctx, m=mapping, p=name, s=spec, r=required: self._judge(m, p, s, r, ctx),
                    (
                        "param",
                        mapping.action,
                        name,
                        required,
                        json.dumps(spec_json(mapping, name), default=str),
                    ),
                    template,
                    event,
                )
                param = ParamCount(name, _source(spec, template), required)
                param.nothing = int((runs & (verdict.codes == NOTHING)).sum())
                bad = runs & (verdict.codes == INVALID)
                param.invalid = int(bad.sum())
                param.example = verdict.example(bad)
                failing |= runs & (verdict.codes != OK)
                count.params.append(param)
            count.failed = int(failing.sum())
        return out

    def _judge(
        self, mapping: ActionMapping, name: str, spec, required: bool, context
    ) -> tuple[int, str | None]:
        try:
            value = spec.resolve(context)
        except CoercionError as exc:
            return INVALID, f"param `{name}`: {exc}"
        if is_nothing(value):
            return (NOTHING if required else OK), None
        problems = normalize(mapping.action, {name: value})
        return (INVALID, "; ".join(problems)) if problems else (OK, None)


def spec_json(mapping: ActionMapping, name: str) -> Any:
    params = mapping.raw.get("params") or {}
    return params.get(name)


def _source(spec, template: Mapping[str, Any]) -> str:
    text = spec.describe()
    columns = []
    for path in spec.paths:
        key = _needs(path)
        if isinstance(key, str) and template_column(template.get(key)) is not None:
            columns.append(json.dumps(template_column(template[key]), ensure_ascii=False))
    if columns:
        text += " ← column " + ", ".join(dict.fromkeys(columns))
    return text
