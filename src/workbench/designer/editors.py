"""Small widget groups the designer is built from: one parameter's choice, the conditions."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable

import ipywidgets as w

from ..specs import COERCIONS, OPERATORS
from .draft import KINDS, parse_literal

COERCION_OPTIONS = [("as is", "")] + [(c, c) for c in COERCIONS]
KIND_LABELS = {
    "none": "not mapped",
    "column": "Clay column",
    "path": "path",
    "value": "literal",
    "template": "template",
    "first": "first of paths",
}
PLACEHOLDERS = {
    "path": "body.email",
    "value": '"text", 42 or ["sales-team"]',
    "template": "acct-{{body.company_domain}}",
    "first": "body.company_domain, body.domain",
}


class ParamEditor:
    """One parameter: how it gets its value (a column, a path, a literal, a template) and its coercion."""

    def __init__(self, name: str, required: bool, columns: list[str], on_change: Callable[[], None]):
        self.name = name
        self.required = required
        self.label = w.HTML(
            f"<code>{name}</code>{' <b>*</b>' if required else ''}", layout=w.Layout(width="130px")
        )
        self.kind = w.Dropdown(
            options=[(KIND_LABELS[k], k) for k in KINDS], value="none", layout=w.Layout(width="140px")
        )
        self.column = w.Dropdown(options=[""] + list(columns), value="", layout=w.Layout(width="260px"))
        self.text = w.Text(continuous_update=False, layout=w.Layout(width="260px"))
        self.coerce = w.Dropdown(options=COERCION_OPTIONS, value="", layout=w.Layout(width="110px"))
        self.region = w.Text(
            placeholder="region, e.g. US", continuous_update=False, layout=w.Layout(width="110px")
        )
        self.widget = w.HBox([self.label, self.kind, self.column, self.text, self.coerce, self.region])
        # Stable hooks for the page (and for browser tests): wb-param-<name>-<part>.
        parts = (("kind", self.kind), ("column", self.column), ("text", self.text), ("as", self.coerce))
        for part, widget in parts:
            widget.add_class(f"wb-param-{name}-{part}")
        self._on_change = on_change
        for widget in (self.kind, self.column, self.text, self.coerce, self.region):
            widget.observe(self._changed, names="value")
        self._layout()

    def set_columns(self, columns: list[str]) -> None:
        current = self.column.value
        self.column.options = [""] + list(columns)
        self.column.value = current if current in columns else ""

    def set(self, kind: str, text: str, as_: str | None, region: str | None = None) -> None:
        """Show a choice without firing the change callback."""
        callback, self._on_change = self._on_change, None
        try:
            self.kind.value = kind
            if kind == "column":
                if text not in self.column.options:
                    self.column.options = list(self.column.options) + [text]
                self.column.value = text
                self.text.value = ""
            else:
                self.column.value = ""
                self.text.value = text
            self.coerce.value = as_ or ""
            self.region.value = region or ""
        finally:
            self._on_change = callback
        self._layout()

    def choice(self) -> tuple[str, str, str | None, str | None]:
        kind = self.kind.value
        text = self.column.value if kind == "column" else self.text.value
        as_ = self.coerce.value if kind in ("column", "path") and self.coerce.value else None
        region = self.region.value.strip().upper() if as_ == "e164" and self.region.value.strip() else None
        return kind, text, as_, region

    def _layout(self) -> None:
        kind = self.kind.value
        self.column.layout.display = "" if kind == "column" else "none"
        self.text.layout.display = "" if kind in ("path", "value", "template", "first") else "none"
        self.coerce.layout.display = "" if kind in ("column", "path") else "none"
        self.region.layout.display = (
            "" if kind in ("column", "path") and self.coerce.value == "e164" else "none"
        )
        self.text.placeholder = PLACEHOLDERS.get(kind, "")

    def _changed(self, change) -> None:
        self._layout()
        if self._on_change is not None:
            self._on_change()


class ConditionEditor:
    """The mapping's `when` list as JSON, plus a row that appends one condition to it."""

    def __init__(self, on_change: Callable[[], None]):
        self.text = w.Textarea(
            value="[]",
            continuous_update=False,
            placeholder='[{"path": "body.icp_score", "as": "number", "gte": 80}]',
            layout=w.Layout(width="640px", height="70px"),
        )
        self.text.add_class("wb-conditions")
        self.path = w.Text(placeholder="body.icp_score", layout=w.Layout(width="200px"))
        self.op = w.Dropdown(options=OPERATORS, value="eq", layout=w.Layout(width="100px"))
        self.operand = w.Text(placeholder="80", layout=w.Layout(width="140px"))
        self.coerce = w.Dropdown(options=COERCION_OPTIONS, value="", layout=w.Layout(width="110px"))
        self.add = w.Button(description="Add condition", icon="plus")  # wired by the designer
        self.widget = w.VBox(
            [
                w.HTML("<b>Conditions</b> (all must hold; a row that fails one is skipped)"),
                self.text,
                w.HBox([self.path, self.op, self.operand, self.coerce, self.add]),
            ]
        )
        self._on_change = on_change
        self.text.observe(lambda _: self._on_change and self._on_change(), names="value")

    def conditions(self) -> list:
        """The conditions as written; text that is not a JSON list raises ValueError saying so."""
        text = self.text.value.strip() or "[]"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(
                f"conditions are not valid JSON ({exc}); write a list such as {self.text.placeholder}"
            ) from None
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"conditions are a JSON list such as {self.text.placeholder}")
        return value

    def set(self, conditions: list) -> None:
        callback, self._on_change = self._on_change, None
        try:
            self.text.value = json.dumps(conditions, ensure_ascii=False)
        finally:
            self._on_change = callback

    def append(self) -> None:
        condition: dict = {"path": self.path.value.strip()}
        if self.coerce.value:
            condition["as"] = self.coerce.value
        condition[self.op.value] = (
            parse_literal(self.operand.value)
            if self.op.value != "exists"
            else (self.operand.value.strip().lower() not in ("false", "no", "0"))
        )
        self.text.value = json.dumps(self.conditions() + [condition], ensure_ascii=False)


class SuggestionList:
    """Suggestions from the column profile, each with why, to accept or dismiss one by one."""

    def __init__(self, on_accept: Callable[[object], None], on_dismiss: Callable[[object], None]):
        self.on_accept, self.on_dismiss = on_accept, on_dismiss
        self.accept_all = w.Button(description="Accept all", icon="check")
        self.accept_all.add_class("wb-accept-all")
        self.rows = w.VBox()
        self.widget = w.VBox(
            [
                w.HBox(
                    [w.HTML("<b>Suggested from the export's column profile</b>"), self.accept_all],
                    layout=w.Layout(align_items="center"),
                ),
                self.rows,
            ],
            layout=w.Layout(border="1px solid #dadce0", padding="4px", display="none"),
        )
        self.widget.add_class("wb-suggestions")

    def show(self, suggestions: list) -> None:
        rows = []
        for suggestion in suggestions:
            accept = w.Button(
                description="Accept", icon="check", layout=w.Layout(width="96px", flex="0 0 auto")
            )
            dismiss = w.Button(
                description="Dismiss", icon="times", layout=w.Layout(width="96px", flex="0 0 auto")
            )
            accept.add_class("wb-accept")
            dismiss.add_class("wb-dismiss")
            accept.on_click(lambda _, s=suggestion: self.on_accept(s))
            dismiss.on_click(lambda _, s=suggestion: self.on_dismiss(s))
            text = w.HTML(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(suggestion.describe())))
            row = w.HBox([accept, dismiss, text], layout=w.Layout(align_items="center"))
            row.add_class("wb-suggestion")
            rows.append(row)
        self.rows.children = tuple(rows)
        self.widget.layout.display = "" if rows else "none"
