"""`MappingDesigner`: an ipywidgets UI that edits a mapping config against a Clay export table."""

from __future__ import annotations

import functools
import html
import logging
import os
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path as FilePath

import duckdb
import ipywidgets as w

from ..clay import ColumnProfile, profile, row_to_body, setup_text, snake_case
from ..colours import AMBER, GREEN, RED, RED_TINT
from ..config import SourceConfig, load_config, parse_config, save_config
from ..errors import ConfigError, SaveRefused, WorkbenchError
from . import draft as d
from .checks import Check, check_config, render_checks
from .counts import MappingCount, TableEvaluator
from .editing import parse_template_text
from .layout import DEFAULT_RECEIVER_URL, DesignerLayout
from .preview import PreviewRow, preview_rows, render_counts, render_preview
from .suggest import Suggestion, apply_suggestion, in_place, suggest
from .table import ExportTable, list_tables
from .workspace import workspace

log = logging.getLogger(__name__)


def default_save_path() -> FilePath:
    """`mappings/designed.json` of the project (git-ignored), wherever the kernel runs."""
    try:
        return workspace().designed_config
    except WorkbenchError:
        return FilePath("designed.json").resolve()


def _part(name: str, doc: str) -> property:
    """A read-only attribute of the designer that its `editing` part holds."""
    return property(lambda self: getattr(self.editing, name), doc=doc)


class MappingDesigner(DesignerLayout):
    """Design the mappings of one event against an export table, with a live preview.

    `con` is a DuckDB connection holding the loaded export (`table`); `config` is a path or a
    config dict to start from (None starts empty, with every column in the body template);
    Save writes to `save_path` (default: the project's git-ignored `mappings/designed.json`).
    Display `designer.widget`; the state is on the object (`config`, `preview`, `counts`). The
    draft config and the widgets that edit it are its `editing` part (`editing.py`); its widgets
    and their layout are made by `DesignerLayout` (`layout.py`).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str | None = None,
        config: str | os.PathLike | dict | None = None,
        environment: str = "development",
        sample_size: int = 20,
        save_path: str | os.PathLike | None = None,
        receiver_url: str = DEFAULT_RECEIVER_URL,
        clock: Callable[[], datetime] = datetime.now,
    ):
        self.con = con
        tables = list_tables(con)
        if table is None:
            if not tables:
                raise WorkbenchError("the DuckDB database has no table yet; load a Clay export first")
            table = tables[0]
        self.table = ExportTable(con, table)
        self.evaluator = TableEvaluator(self.table, row_to_body)
        self.preview: list[PreviewRow] = []
        self.counts: list[MappingCount] = []
        self.problems: list[tuple[str, str]] = []
        self.last_error: BaseException | None = None
        self.saved_path: FilePath | None = None
        self._saved: tuple[dict, str] | None = None  # the config last saved, and when
        self.checks: list[Check] = []
        self.suggestions: list[Suggestion] = []
        self._profiles: list[ColumnProfile] = []
        self._dismissed: set[tuple[str, str, str]] = set()
        self._clock = clock
        self._samples: dict[int, list[dict]] = {}
        self._refresh_listeners: list[Callable[[], None]] = []
        self._build_widgets(tables, table, sample_size, save_path or default_save_path())
        self.receiver_url.value = receiver_url
        self._profiles = self._profile()
        if config is None or isinstance(config, dict):
            self.editing.start(config, environment)
        else:
            self.load(config, environment)
        self._show_suggestions()

    # -- the draft config (its `editing` part) --------------------------------------------

    config = _part("config", "The draft config, plain JSON.")
    environment = _part("environment", "The environment being edited.")
    event = _part("event", "The event being designed.")
    template = _part("template", "The body template of the draft config.")
    param_editors = _part("param_editors", "The parameter editors of the selected mapping, by name.")

    def add_mapping(self, action: str) -> None:
        """Add a mapping of `action` for the current event, pre-filled where a column fits."""
        self.editing.add_mapping(action)

    def remove_mapping(self) -> None:
        self.editing.remove_mapping()

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
        self.editing.sync_all()
        self._show_suggestions()
        self.refresh()

    def add_panel(self, title: str, panel: w.Widget) -> int:
        """Add a tab after the designer's own (e.g. a deploy panel); returns its index."""
        self.tabs.children = (*self.tabs.children, panel)
        index = len(self.tabs.children) - 1
        self.tabs.set_title(index, title)
        return index

    def _guard(self, fn):
        """Run a callback; show its error in the UI (and log it) instead of losing it."""

        @functools.wraps(fn)
        def run(*args, **kwargs):
            if self.editing.syncing:
                return None
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user, and logged
                self.show_error(exc)
                return None
            self.last_error = None
            self._show_errors()
            self._show_unsaved()
            return result

        return run

    def _show_unsaved(self) -> None:
        """Once saved, say when the design has changed since (the file no longer shows it)."""
        if self._saved is None:
            return
        config, when = self._saved
        if self.config != config:
            self.save_status.value = (
                f"<span class='wb-unsaved' style='color:{AMBER}'>Changed since saved at {when}: "
                "Save to write it</span>"
            )

    def input_errors(self) -> list[str]:
        """What the user typed that does not parse yet (the config behind it is unchanged)."""
        errors = []
        for read in (self.conditions.conditions, lambda: parse_template_text(self.template_text.value)):
            try:
                read()
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    def save_blockers(self) -> list[str]:
        """Why Save would refuse now: every error the designer shows (empty when it may save)."""
        reasons = []
        if self.last_error is not None:
            reasons.append(str(self.last_error))
        reasons += [e for e in self.input_errors() if e not in reasons]
        if self.problems:
            n = len(self.problems)
            reasons.append(f"the config has {n} problem{'s' if n != 1 else ''} (listed above the preview)")
        return reasons

    def show_error(self, exc: BaseException) -> None:
        self.last_error = exc
        log.warning("designer callback failed", exc_info=exc)
        self._show_errors(exc)

    def _show_errors(self, exc: BaseException | None = None) -> None:
        """The error box: the callback's error (if any) and every input that does not parse."""
        parts = []
        if exc is not None and not isinstance(exc, (WorkbenchError, ValueError)):
            trace = "".join(traceback.format_exception(exc))
            parts.append(
                f"<pre style='white-space:pre-wrap'>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</pre>"
                f"<details><summary>traceback</summary><pre>{html.escape(trace)}</pre></details>"
            )
        messages = [str(exc)] if isinstance(exc, (WorkbenchError, ValueError)) else []
        messages += [m for m in self.input_errors() if m not in messages]
        parts += [f"<pre style='white-space:pre-wrap'>{html.escape(m)}</pre>" for m in messages]
        if not parts:
            self.error_area.value = self.stale_note.value = ""
            return
        self.error_area.value = (
            f"<div class='wb-error' style='border:1px solid {RED};background:{RED_TINT};padding:6px'>"
            f"<b>Error</b>{''.join(parts)}</div>"
        )
        self.stale_note.value = (
            f"<p class='wb-stale' style='color:{RED}'>The preview shows the mapping as it was before "
            "the error above; fix the error to refresh it.</p>"
        )

    # -- the preview, saving and loading ------------------------------------------------

    def validated(self) -> SourceConfig:
        """The config as the core reads it (raises `ConfigError` listing every problem)."""
        return parse_config(self.config)

    def refresh(self) -> None:
        """Recompute the preview of the sample rows and the counts over the whole table."""
        try:
            config = self.validated()
        except ConfigError as exc:
            self.problems, self.preview, self.counts = exc.problems, [], []
            items = "".join(
                f"<li><code>{html.escape(loc)}</code>: {html.escape(msg)}</li>" for loc, msg in exc.problems
            )
            self.summary.value = (
                f"<div class='wb-problems' style='color:{RED}'>The config has problems "
                f"(Save is refused until they are fixed):<ul>{items}</ul></div>"
            )
            self.counts_html.value = self.preview_html.value = self.checks_html.value = ""
            self._refreshed()
            return
        self.problems = []
        n = self.sample_size.value
        rows = self._samples.get(n)
        if rows is None:
            rows = self._samples[n] = self.table.sample(n)
        self.preview = preview_rows(config, self.environment, rows, row_to_body, self.event)
        self.counts = self.evaluator.counts(config, self.environment, self.event)
        self.checks = check_config(self.config, self.environment, self.event, self.table.columns)
        failed = sum(row.failed for row in self.preview)
        self.summary.value = (
            f"<p>Table <code>{html.escape(self.table.name)}</code>: {self.table.rows:,} rows. "
            f"Event <code>{html.escape(self.event)}</code> in <code>{html.escape(self.environment)}</code>: "
            f"{len(self.counts)} action(s) in execution order. Sample: {len(self.preview)} rows, "
            f"<span class='wb-sample-failed'>{failed} with a failure</span> (listed first).</p>"
        )
        self.checks_html.value = render_checks(self.checks)
        self.counts_html.value = render_counts(self.counts, self.table.rows, self.event)
        self._render_preview()
        self._refreshed()

    # -- for panels added with add_panel ---------------------------------------------------

    def on_refresh(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every refresh, i.e. after every edit of the config."""
        self._refresh_listeners.append(callback)

    def _refreshed(self) -> None:
        for callback in self._refresh_listeners:
            callback()

    def open_config(self, data: dict, environment: str | None = None) -> None:
        """Open a config given as a dict (one pulled from Knock, say) for editing; Save writes it."""
        parse_config(data)
        self.editing.adopt(d.copy_config(data), environment or self.environment)
        self.refresh()

    # -- suggestions from the column profile ----------------------------------------------

    def _profile(self) -> list[ColumnProfile]:
        try:
            return profile(self.con, self.table.name)
        except duckdb.Error:
            log.info("no column profile of %s: no suggestions", self.table.name, exc_info=True)
            return []

    def _show_suggestions(self) -> None:
        """The profile's suggestions that the config does not follow yet and were not dismissed."""
        self.suggestions = [
            s
            for s in suggest(self._profiles)
            if s.key not in self._dismissed and not in_place(self.config, self.environment, s)
        ]
        self.suggestion_list.show(self.suggestions)

    def accept_suggestion(self, suggestion: Suggestion) -> None:
        apply_suggestion(self.config, self.environment, suggestion, snake_case)
        self._after_suggestions()

    def dismiss_suggestion(self, suggestion: Suggestion) -> None:
        self._dismissed.add(suggestion.key)
        self._show_suggestions()

    def accept_all_suggestions(self) -> list[Suggestion]:
        """Accept every suggestion shown; returns them."""
        accepted = list(self.suggestions)
        for suggestion in accepted:
            apply_suggestion(self.config, self.environment, suggestion, snake_case)
        self._after_suggestions()
        return accepted

    def _after_suggestions(self) -> None:
        self.editing.sync_all(select=None)
        self._show_suggestions()
        self.refresh()

    def _render_preview(self) -> None:
        actions = [c.action for c in self.counts]
        self.preview_html.value = render_preview(self.preview, actions, self.only_failures.value)

    def save(self, path: str | os.PathLike | None = None) -> FilePath:
        """Validate and write the config (stable key order), then show the Clay column setup.

        Refused with `SaveRefused` (nothing written) while the designer shows an error.
        """
        blockers = self.save_blockers()
        if blockers:
            raise SaveRefused(blockers)
        target = FilePath(path if path is not None else self.path_text.value)
        config = save_config(self.config, target)
        self.saved_path = target
        self._saved = (d.copy_config(self.config), self._clock().strftime("%H:%M:%S"))
        self.setup_text.value = setup_text(
            config, self.environment, self.receiver_url.value, self.table.columns
        )
        self.setup_text.layout.display = ""
        self.save_status.value = (
            f"<span class='wb-saved' style='color:{GREEN}'>Saved at {self._saved[1]} to "
            f"<code>{html.escape(str(target))}</code></span>"
        )
        self.message.value = (
            f"<p>Saved <code>{html.escape(str(target))}</code>. Paste this into Clay's HTTP API column:</p>"
        )
        return target

    def _save_clicked(self, _button) -> None:
        """The Save button: a refusal or an error is said next to it, and nothing is written."""
        try:
            self.save()
        except SaveRefused as exc:
            reasons = "".join(f"<li>{html.escape(r)}</li>" for r in exc.reasons)
            self.save_status.value = (
                f"<div class='wb-save-refused' style='color:{RED}'><b>Not saved</b> (nothing was "
                f"written) while the designer shows an error:<ul style='margin:0'>{reasons}</ul></div>"
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user, and logged
            self.save_status.value = f"<span class='wb-save-refused' style='color:{RED}'><b>Not saved</b>: see the error above</span>"
            self.show_error(exc)

    def load(self, path: str | os.PathLike, environment: str | None = None) -> None:
        """Open an existing config for editing."""
        # The save path stays as it is: opening the shipped config must not make Save overwrite it.
        config = load_config(path)
        if environment is None:
            # Keep the environment being edited if the file has it; never add one to the file.
            current = self.environment_choice.value
            environment = current if current in config.environments else next(iter(config.environments))
        self.editing.adopt(d.copy_config(config.raw), environment)
        self._saved = None  # what was saved before is another design
        self._show_suggestions()
        self.message.value = f"<p>Loaded <code>{html.escape(str(path))}</code>.</p>"
        self.save_status.value = (
            f"<span class='wb-loaded'>Loaded <code>{html.escape(str(path))}</code></span>"
        )
        self.refresh()

    def _ipython_display_(self):  # pragma: no cover - only in a notebook
        from IPython.display import display  # IPython is there whenever a notebook shows this

        display(self.widget)
