"""How widget edits become config edits: the draft config, and syncing its widgets from it.

A `MappingDesigner` (`widgets.py`) builds the widgets, refreshes the preview, saves and loads; it
holds a `ConfigEditing` (as `designer.editing`), which reads and writes the draft config (plain
JSON, `config`) as the editor widgets change, and shows the config in them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from ..clay import snake_case
from . import draft as d
from .editors import ConditionEditor, ParamEditor


def parse_template_text(text: str) -> dict:
    """The body template as typed; text that is not a JSON object raises ValueError saying so."""
    try:
        template = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"the body template is not valid JSON ({exc}); fix it to refresh the preview"
        ) from None
    if not isinstance(template, dict):
        raise ValueError('the body template is a JSON object: {"email": "Work Email", ...}')
    return template


@dataclass(frozen=True, slots=True)
class EditorWidgets:
    """The designer's widgets that show the draft config (ipywidgets; built by the designer)."""

    environment_choice: Any
    event_name: Any
    mapping_list: Any
    action_choice: Any
    active: Any
    params_box: Any
    conditions: ConditionEditor
    idempotency_kind: Any
    idempotency_path: Any
    idempotency_window: Any
    template_text: Any


class ConfigEditing:
    """The draft config behind the designer's editor widgets.

    `columns()` gives the export table's columns, `changed()` is called after every edit (the
    designer refreshes its preview), `guard(fn)` wraps a widget callback (the designer shows its
    errors). `syncing` is true while the widgets are set from the config: their callbacks then
    change nothing.
    """

    def __init__(
        self,
        widgets: EditorWidgets,
        columns: Callable[[], list[str]],
        changed: Callable[[], None],
        guard: Callable[[Callable], Callable],
    ):
        self.ui = widgets
        self.columns = columns
        self.changed = changed
        self.guard = guard
        self.config: dict = {}
        self.syncing = False
        self.param_editors: dict[str, ParamEditor] = {}

    # -- state ---------------------------------------------------------------------------

    @property
    def environment(self) -> str:
        return self.ui.environment_choice.value

    @property
    def event(self) -> str:
        return (self.ui.event_name.value or "").strip() or d.DEFAULT_EVENT

    @property
    def template(self) -> dict:
        clay = self.config.setdefault("clay", {})
        if not isinstance(clay.get("body_template"), dict):
            clay["body_template"] = self.default_template()
        return clay["body_template"]

    def env(self) -> dict:
        return self.config["environments"][self.environment]

    def mappings(self) -> list[dict]:
        return self.env().setdefault("mappings", [])

    def selected(self) -> dict | None:
        index = self.ui.mapping_list.value
        mappings = self.mappings()
        return mappings[index] if index is not None and index < len(mappings) else None

    def default_template(self) -> dict:
        """Every column under its snake_case name, plus the event (what Clay sends without a template)."""
        template: dict[str, Any] = {"event": {"value": self.ui.event_name.value or d.DEFAULT_EVENT}}
        for column in self.columns():
            d.key_for_column(template, column, snake_case)
        return template

    def start(self, config: dict | None, environment: str) -> None:
        if config is None:
            data = d.new_config(environment)
            data["clay"]["body_template"] = None
        else:
            data = d.copy_config(config)
        self.adopt(data, environment)

    def adopt(self, data: dict, environment: str | None) -> None:
        ui = self.ui
        envs = data.setdefault("environments", {})
        if environment and environment not in envs:
            envs[environment] = d.new_environment(environment)
        self.config = data
        env = environment if environment in envs else next(iter(envs))
        events = [m.get("event") for m in envs[env].get("mappings", []) if m.get("event")]
        self.syncing = True
        try:
            ui.environment_choice.options = list(envs)
            ui.environment_choice.value = env
            ui.event_name.options = list(dict.fromkeys(events))
            ui.event_name.value = events[0] if events else d.DEFAULT_EVENT
        finally:
            self.syncing = False
        _ = self.template  # materialise the default template if the config has none
        self.sync_all()

    # -- syncing the widgets from the config ----------------------------------------------

    def sync_all(self, select: int | None = None, editors: bool = True) -> None:
        ui = self.ui
        self.syncing = True
        try:
            env = self.env()
            events = [m.get("event") for m in env.get("mappings", []) if m.get("event")]
            ui.event_name.options = list(dict.fromkeys(events + [self.event]))
            order = d.ordered_mappings(self.mappings(), self.event)
            labels = []
            for pos, index in enumerate(order, start=1):
                m = self.mappings()[index]
                extra = "" if m.get("active", True) else " (inactive)"
                extra += " when …" if m.get("when") else ""
                labels.append((f"{pos}. {m.get('action')}{extra}", index))
            ui.mapping_list.options = labels
            if select is None and ui.mapping_list.value in order:
                select = ui.mapping_list.value
            ui.mapping_list.value = select if select in order else (order[0] if order else None)
            idem = env.get("idempotency")
            key = idem.get("key") if isinstance(idem, dict) else None
            if isinstance(key, dict):
                ui.idempotency_kind.value, ui.idempotency_path.value = "hash", str(key.get("hash", ""))
            elif isinstance(key, str):
                ui.idempotency_kind.value, ui.idempotency_path.value = "path", key
            else:
                ui.idempotency_kind.value, ui.idempotency_path.value = "off", ""
            if isinstance(idem, dict):
                ui.idempotency_window.value = idem.get("window_hours", 24)
            ui.template_text.value = json.dumps(self.template, indent=2, ensure_ascii=False)
        finally:
            self.syncing = False
        if editors:
            self.sync_mapping()

    def sync_mapping(self) -> None:
        ui = self.ui
        mapping = self.selected()
        self.syncing = True
        try:
            if mapping is None:
                ui.params_box.children = ()
                self.param_editors = {}
                ui.conditions.set([])
                return
            action = mapping.get("action")
            ui.action_choice.value = action
            ui.active.value = mapping.get("active", True)
            spec = ACTION_TYPES[action]
            if tuple(self.param_editors) != spec.params:
                # Editors are kept while the action type stays, so widget references stay valid.
                self.param_editors = {
                    name: ParamEditor(
                        name, name in spec.required, self.columns(), self.guard(self.mapping_edited)
                    )
                    for name in spec.params
                }
                ui.params_box.children = tuple(e.widget for e in self.param_editors.values())
            for name, editor in self.param_editors.items():
                editor.set(*d.choice_from_spec(mapping.get("params", {}).get(name), self.template))
            when = mapping.get("when", [])
            ui.conditions.set(when if isinstance(when, list) else [when])
        finally:
            self.syncing = False

    # -- widget callbacks -----------------------------------------------------------------

    def event_changed(self, change) -> None:
        entry = self.template.get("event")
        if isinstance(entry, dict) and set(entry) == {"value"}:
            # The Clay column sends the event being designed.
            entry["value"] = self.event
        self.sync_all()
        self.changed()

    def mapping_selected(self, change) -> None:
        self.sync_mapping()

    def action_changed(self, change) -> None:
        mapping = self.selected()
        if mapping is None or mapping.get("action") == change["new"]:
            return
        allowed = ACTION_TYPES[change["new"]].params
        fresh = d.new_mapping(self.event, change["new"], self.template, snake_case, self.columns())
        kept = {k: v for k, v in mapping.get("params", {}).items() if k in allowed}
        mapping["action"], mapping["params"] = change["new"], {**fresh["params"], **kept}
        self.sync_all(select=self.ui.mapping_list.value)
        self.changed()

    def mapping_edited(self, *_) -> None:
        mapping = self.selected()
        if mapping is None:
            return
        when = self.ui.conditions.conditions()  # first: text that does not parse changes nothing
        params = {}
        for name, editor in self.param_editors.items():
            kind, text, as_, region = editor.choice()
            spec = d.spec_from_choice(kind, text, as_, self.template, snake_case, region)
            if spec is not None:
                params[name] = spec
        mapping["params"] = params
        if when:
            mapping["when"] = when
        else:
            mapping.pop("when", None)
        if self.ui.active.value:
            mapping.pop("active", None)
        else:
            mapping["active"] = False
        self.sync_all(select=self.ui.mapping_list.value, editors=False)
        self.changed()

    def idempotency_edited(self, change) -> None:
        ui = self.ui
        kind, path = ui.idempotency_kind.value, ui.idempotency_path.value.strip()
        env = self.env()
        if kind == "off":
            env["idempotency"] = None
        else:
            path = path or ("body" if kind == "hash" else "body.row_id")
            key = {"hash": path} if kind == "hash" else path
            env["idempotency"] = {"key": key, "window_hours": ui.idempotency_window.value}
        self.changed()

    def template_edited(self, change) -> None:
        template = parse_template_text(change["new"])
        self.config.setdefault("clay", {})["body_template"] = template
        self.sync_mapping()
        self.changed()

    # -- edits (also callable from code) ---------------------------------------------------

    def add_mapping(self, action: str) -> None:
        """Add a mapping of `action` for the current event, pre-filled where a column fits."""
        if action not in ACTION_TYPES:
            raise ValueError(f"unknown action {action!r}; use one of {', '.join(EXECUTION_ORDER)}")
        mapping = d.new_mapping(self.event, action, self.template, snake_case, self.columns())
        self.mappings().append(mapping)
        self.sync_all(select=len(self.mappings()) - 1)
        self.changed()

    def remove_mapping(self) -> None:
        index = self.ui.mapping_list.value
        if index is None:
            raise ValueError("select an action to remove first")
        del self.mappings()[index]
        self.sync_all(select=None)
        self.changed()
