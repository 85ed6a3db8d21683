"""How `MappingDesigner` looks: its widgets, how their events reach it, and their layout."""

from __future__ import annotations

import ipywidgets as w

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from .editing import ConfigEditing, EditorWidgets
from .editors import ConditionEditor, SuggestionList

DEFAULT_RECEIVER_URL = "http://127.0.0.1:8000"
# Tab titles whole (Lumino's tab bar cuts them at a fixed width), and a compact preview.
_STYLE = """<style>
.wb-designer .lm-TabBar-tab, .wb-designer .p-TabBar-tab {flex:0 0 auto !important; min-width:120px}
</style>"""


class DesignerLayout:
    """`MappingDesigner`'s widgets, made once: each one an attribute of the designer, its events
    sent to the designer's methods (through its `_guard`), and its `editing` part made over them."""

    def _build_widgets(self, tables, table, sample_size, save_path) -> None:
        g = self._guard
        wide = {"description_width": "initial"}
        self.table_choice = w.Dropdown(description="Table", style=wide, options=tables, value=table)
        self.environment_choice = w.Dropdown(description="Environment", style=wide, options=[])
        self.event_name = w.Combobox(
            description="Event",
            style=wide,
            placeholder="lead.enriched",
            ensure_option=False,
            continuous_update=False,
        )
        self.mapping_list = w.Select(
            description="Actions", style=wide, options=[], rows=4, layout=w.Layout(width="520px")
        )
        self.new_action = w.Dropdown(
            options=[(f"{a} ({ACTION_TYPES[a].label})", a) for a in EXECUTION_ORDER], value="users_identify"
        )
        self.add_button = w.Button(description="Add action", icon="plus")
        self.remove_button = w.Button(description="Remove action", icon="trash")
        self.action_choice = w.Dropdown(description="Action", style=wide, options=EXECUTION_ORDER)
        self.active = w.Checkbox(description="active", value=True)
        self.params_box = w.VBox()
        self.conditions = ConditionEditor(g(lambda *_: self.editing.mapping_edited()))
        self.suggestion_list = SuggestionList(g(self.accept_suggestion), g(self.dismiss_suggestion))
        self.suggestion_list.accept_all.on_click(g(lambda _: self.accept_all_suggestions()))
        self.idempotency_kind = w.Dropdown(
            description="Idempotency",
            style=wide,
            options=[("off", "off"), ("key path", "path"), ("hash of", "hash")],
            value="off",
        )
        self.idempotency_path = w.Text(placeholder="body.row_id or body", continuous_update=False)
        self.idempotency_window = w.BoundedFloatText(
            description="window (h)", style=wide, value=24, min=0.01, max=8760, continuous_update=False
        )
        self.template_text = w.Textarea(
            continuous_update=False, layout=w.Layout(width="640px", height="180px")
        )
        self.sample_size = w.BoundedIntText(
            description="Sample rows", style=wide, value=sample_size, min=1, max=1000
        )
        self.only_failures = w.Checkbox(description="failures only", value=False, indent=False)
        self.summary = w.HTML()
        self.stale_note = w.HTML()
        self.checks_html = w.HTML()
        self.counts_html = w.HTML()
        self.preview_html = w.HTML()
        self.path_text = w.Text(
            description="File",
            style=wide,
            value=str(save_path),
            layout=w.Layout(width="420px", min_width="300px"),
        )
        self.save_button = w.Button(description="Save", icon="save", button_style="primary")
        self.load_button = w.Button(description="Load", icon="folder-open")
        self.save_status = w.HTML()
        self.receiver_url = w.Text(
            description="Receiver", style=wide, value=DEFAULT_RECEIVER_URL, layout=w.Layout(width="520px")
        )
        self.message = w.HTML()
        self.setup_text = w.Textarea(layout=w.Layout(width="720px", height="200px", display="none"))
        self.error_area = w.HTML()
        self.editing = editing = ConfigEditing(
            EditorWidgets(
                self.environment_choice,
                self.event_name,
                self.mapping_list,
                self.action_choice,
                self.active,
                self.params_box,
                self.conditions,
                self.idempotency_kind,
                self.idempotency_path,
                self.idempotency_window,
                self.template_text,
            ),
            columns=lambda: self.table.columns,
            changed=self.refresh,
            guard=g,
        )

        self.table_choice.observe(g(self._table_changed), names="value")
        self.environment_choice.observe(g(self._environment_changed), names="value")
        self.event_name.observe(g(editing.event_changed), names="value")
        self.mapping_list.observe(g(editing.mapping_selected), names="value")
        self.add_button.on_click(g(lambda _: self.add_mapping(self.new_action.value)))
        self.remove_button.on_click(g(lambda _: self.remove_mapping()))
        self.action_choice.observe(g(editing.action_changed), names="value")
        self.active.observe(g(editing.mapping_edited), names="value")
        self.conditions.add.on_click(g(lambda _: self.conditions.append()))
        for widget in (self.idempotency_kind, self.idempotency_path, self.idempotency_window):
            widget.observe(g(editing.idempotency_edited), names="value")
        self.template_text.observe(g(editing.template_edited), names="value")
        self.sample_size.observe(g(lambda _: self.refresh()), names="value")
        self.only_failures.observe(g(lambda _: self._render_preview()), names="value")
        self.save_button.on_click(self._save_clicked)
        self.load_button.on_click(g(lambda _: self.load(self.path_text.value)))

        editor = w.VBox(
            [
                w.HBox([self.mapping_list, w.VBox([self.new_action, self.add_button, self.remove_button])]),
                w.HBox([self.action_choice, self.active]),
                w.HTML("<b>Parameters</b> (<b>*</b> required)"),
                self.params_box,
                self.conditions.widget,
            ]
        )
        body = w.VBox(
            [
                w.HTML(
                    '<b>Body template</b>: body key → Clay column, {"column": C, "as": T} or {"value": V}'
                ),
                self.template_text,
            ]
        )
        idempotency = w.HBox([self.idempotency_kind, self.idempotency_path, self.idempotency_window])
        self.tabs = w.Tab(children=[editor, body, idempotency])
        for i, title in enumerate(("Mapping", "Body template", "Idempotency")):
            self.tabs.set_title(i, title)
        self.toolbar = w.VBox(
            [
                w.HBox([self.table_choice, self.environment_choice, self.event_name]),
                w.HBox(
                    [self.path_text, self.load_button, self.save_button, self.save_status],
                    layout=w.Layout(align_items="center"),
                ),
            ]
        )
        self.widget = w.VBox(
            [
                w.HTML(_STYLE),
                self.toolbar,
                self.error_area,
                self.suggestion_list.widget,
                self.tabs,
                w.HTML("<h4>Preview</h4>"),
                w.HBox([self.sample_size, self.only_failures]),
                self.summary,
                self.stale_note,
                self.checks_html,
                self.counts_html,
                self.preview_html,
                self.receiver_url,
                self.message,
                self.setup_text,
            ]
        )
        self.widget.add_class("wb-designer")
        self.save_button.add_class("wb-save")
        self.load_button.add_class("wb-load")
        self.save_status.add_class("wb-save-status")
        self.only_failures.add_class("wb-only-failures")
        self.preview_html.add_class("wb-preview-area")
        self.counts_html.add_class("wb-counts-area")
        self.checks_html.add_class("wb-checks-area")
