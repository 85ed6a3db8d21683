"""How widget edits become config edits: the designer's state, and syncing widgets from it.

`ConfigEditing` is half of `MappingDesigner`: it reads and writes the draft config (plain JSON,
`self.config`) as the widgets change, and shows the config in the widgets. The other half
(`widgets.py`) builds the widgets, refreshes the preview, saves and loads.
"""

from __future__ import annotations

import json
from typing import Any

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from ..clay import row_to_body, snake_case
from . import draft as d
from .counts import TableEvaluator
from .editors import ParamEditor
from .table import ExportTable


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


class ConfigEditing:
    """The draft config behind the designer's widgets (mixed into `MappingDesigner`)."""

    # -- state ---------------------------------------------------------------------------

    @property
    def environment(self) -> str:
        return self.environment_choice.value

    @property
    def event(self) -> str:
        return (self.event_name.value or "").strip() or d.DEFAULT_EVENT

    @property
    def template(self) -> dict:
        clay = self.config.setdefault("clay", {})
        if not isinstance(clay.get("body_template"), dict):
            clay["body_template"] = self.default_template()
        return clay["body_template"]

    def _env(self) -> dict:
        return self.config["environments"][self.environment]

    def _mappings(self) -> list[dict]:
        return self._env().setdefault("mappings", [])

    def _selected(self) -> dict | None:
        index = self.mapping_list.value
        mappings = self._mappings()
        return mappings[index] if index is not None and index < len(mappings) else None

    def default_template(self) -> dict:
        """Every column under its snake_case name, plus the event (what Clay sends without a template)."""
        template: dict[str, Any] = {"event": {"value": self.event_name.value or d.DEFAULT_EVENT}}
        for column in self.table.columns:
            d.key_for_column(template, column, snake_case)
        return template

    def _start(self, config: dict | None, environment: str) -> None:
        if config is None:
            data = d.new_config(environment)
            data["clay"]["body_template"] = None
        else:
            data = d.copy_config(config)
        self._adopt(data, environment)

    def _adopt(self, data: dict, environment: str | None) -> None:
        envs = data.setdefault("environments", {})
        if environment and environment not in envs:
            envs[environment] = d.new_environment(environment)
        self.config = data
        env = environment if environment in envs else next(iter(envs))
        events = [m.get("event") for m in envs[env].get("mappings", []) if m.get("event")]
        self._syncing = True
        try:
            self.environment_choice.options = list(envs)
            self.environment_choice.value = env
            self.event_name.options = list(dict.fromkeys(events))
            self.event_name.value = events[0] if events else d.DEFAULT_EVENT
        finally:
            self._syncing = False
        _ = self.template  # materialise the default template if the config has none
        self._sync_all()

    # -- syncing the widgets from the config ----------------------------------------------

    def _sync_all(self, select: int | None = None, editors: bool = True) -> None:
        self._syncing = True
        try:
            env = self._env()
            events = [m.get("event") for m in env.get("mappings", []) if m.get("event")]
            self.event_name.options = list(dict.fromkeys(events + [self.event]))
            order = d.ordered_mappings(self._mappings(), self.event)
            labels = []
            for pos, index in enumerate(order, start=1):
                m = self._mappings()[index]
                extra = "" if m.get("active", True) else " (inactive)"
                extra += " when …" if m.get("when") else ""
                labels.append((f"{pos}. {m.get('action')}{extra}", index))
            self.mapping_list.options = labels
            if select is None and self.mapping_list.value in order:
                select = self.mapping_list.value
            self.mapping_list.value = select if select in order else (order[0] if order else None)
            idem = env.get("idempotency")
            key = idem.get("key") if isinstance(idem, dict) else None
            if isinstance(key, dict):
                self.idempotency_kind.value, self.idempotency_path.value = "hash", str(key.get("hash", ""))
            elif isinstance(key, str):
                self.idempotency_kind.value, self.idempotency_path.value = "path", key
            else:
                self.idempotency_kind.value, self.idempotency_path.value = "off", ""
            if isinstance(idem, dict):
                self.idempotency_window.value = idem.get("window_hours", 24)
            self.template_text.value = json.dumps(self.template, indent=2, ensure_ascii=False)
        finally:
            self._syncing = False
        if editors:
            self._sync_mapping()

    def _sync_mapping(self) -> None:
        mapping = self._selected()
        self._syncing = True
        try:
            if mapping is None:
                self.params_box.children = ()
                self.param_editors = {}
                self.conditions.set([])
                return
            action = mapping.get("action")
            self.action_choice.value = action
            self.active.value = mapping.get("active", True)
            spec = ACTION_TYPES[action]
            if tuple(self.param_editors) != spec.params:
                # Editors are kept while the action type stays, so widget references stay valid.
                self.param_editors = {
                    name: ParamEditor(
                        name, name in spec.required, self.table.columns, self._guard(self._mapping_edited)
                    )
                    for name in spec.params
                }
                self.params_box.children = tuple(e.widget for e in self.param_editors.values())
            for name, editor in self.param_editors.items():
                editor.set(*d.choice_from_spec(mapping.get("params", {}).get(name), self.template))
            when = mapping.get("when", [])
            self.conditions.set(when if isinstance(when, list) else [when])
        finally:
            self._syncing = False

    # -- callbacks ----------------------------------------------------------------------

    def _table_changed(self, change) -> None:
        self.table = ExportTable(self.con, change["new"])
        self.evaluator = TableEvaluator(self.table, row_to_body)
        self._samples = {}
        for editor in self.param_editors.values():
            editor.set_columns(self.table.columns)
        self._profiles = self._profile()
        self._show_suggestions()
        self.refresh()

    def _environment_changed(self, change) -> None:
        self._sync_all()
        self._show_suggestions()
        self.refresh()

    def _event_changed(self, change) -> None:
        entry = self.template.get("event")
        if isinstance(entry, dict) and set(entry) == {"value"}:
            # The Clay column sends the event being designed.
            entry["value"] = self.event
        self._sync_all()
        self.refresh()

    def _mapping_selected(self, change) -> None:
        self._sync_mapping()

    def _action_changed(self, change) -> None:
        mapping = self._selected()
        if mapping is None or mapping.get("action") == change["new"]:
            return
        allowed = ACTION_TYPES[change["new"]].params
        fresh = d.new_mapping(self.event, change["new"], self.template, snake_case, self.table.columns)
        kept = {k: v for k, v in mapping.get("params", {}).items() if k in allowed}
        mapping["action"], mapping["params"] = change["new"], {**fresh["params"], **kept}
        self._sync_all(select=self.mapping_list.value)
        self.refresh()

    def _mapping_edited(self, *_) -> None:
        mapping = self._selected()
        if mapping is None:
            return
        when = self.conditions.conditions()  # first: text that does not parse changes nothing
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
        if self.active.value:
            mapping.pop("active", None)
        else:
            mapping["active"] = False
        self._sync_all(select=self.mapping_list.value, editors=False)
        self.refresh()

    def _idempotency_edited(self, change) -> None:
        kind, path = self.idempotency_kind.value, self.idempotency_path.value.strip()
        env = self._env()
        if kind == "off":
            env["idempotency"] = None
        else:
            path = path or ("body" if kind == "hash" else "body.row_id")
            key = {"hash": path} if kind == "hash" else path
            env["idempotency"] = {"key": key, "window_hours": self.idempotency_window.value}
        self.refresh()

    def _template_edited(self, change) -> None:
        template = parse_template_text(change["new"])
        self.config.setdefault("clay", {})["body_template"] = template
        self._sync_mapping()
        self.refresh()

    # -- actions (also callable from code) ------------------------------------------------

    def add_mapping(self, action: str) -> None:
        """Add a mapping of `action` for the current event, pre-filled where a column fits."""
        if action not in ACTION_TYPES:
            raise ValueError(f"unknown action {action!r}; use one of {', '.join(EXECUTION_ORDER)}")
        mapping = d.new_mapping(self.event, action, self.template, snake_case, self.table.columns)
        self._mappings().append(mapping)
        self._sync_all(select=len(self._mappings()) - 1)
        self.refresh()

    def remove_mapping(self) -> None:
        index = self.mapping_list.value
        if index is None:
            raise ValueError("select an action to remove first")
        del self._mappings()[index]
        self._sync_all(select=None)
        self.refresh()
