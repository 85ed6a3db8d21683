"""`KnockPanel`: the designer's Knock tab: is the mapping Knock-compatible, and Pull / Push.

The indicator lists what would keep the environment being designed from being pushed to a Knock
source (updated after every edit). Pull opens the Knock source's settings and mappings in the
designer (what the designer does not hold of the config is kept). Push first shows the difference
from what Knock holds, mapping by mapping, and sends only once Confirm is pressed.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping

import ipywidgets as w

from ..colours import GREEN, RED
from ..deploy import DEFAULT_BASE_URL, ManagementClient, PushPlan, environment_blockers, plan_push, pull, push
from ..deploy.translate import source_key

log = logging.getLogger(__name__)


class KnockPanel:
    """The Knock tab of a `MappingDesigner`: add it with `designer.add_panel("Knock", panel.widget)`.

    `client` is a `ManagementClient`, or None to make one when Pull or Push is first pressed
    (from `KNOCK_SERVICE_TOKEN` and `base_url`). The state is on the object: `blockers`,
    `plan` (a push waiting for confirmation) and `last_error`.
    """

    def __init__(
        self,
        designer,
        client: ManagementClient | None = None,
        source: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        environ: Mapping[str, str] | None = None,
        make_client: Callable[..., ManagementClient] = ManagementClient,
    ):
        self.designer = designer
        self._client = client
        self._make_client = lambda: make_client(base_url=base_url, environ=environ)
        self.blockers: list[tuple[str, str]] = []
        self.plan: PushPlan | None = None
        self.last_error: BaseException | None = None
        wide = {"description_width": "initial"}
        self.source_key = w.Text(
            description="Knock source", style=wide, value=source or source_key(designer.config)
        )
        self.indicator = w.HTML()
        self.pull_button = w.Button(description="Pull from Knock", icon="download")
        self.push_button = w.Button(description="Push to Knock…", icon="upload")
        self.difference = w.HTML()
        self.confirm_button = w.Button(description="Confirm push", icon="check", button_style="warning")
        self.cancel_button = w.Button(description="Cancel", icon="times")
        self.confirmation = w.VBox(
            [self.difference, w.HBox([self.confirm_button, self.cancel_button])],
            layout=w.Layout(display="none"),
        )
        self.message = w.HTML()
        self.pull_button.on_click(lambda _: self._run(self.pull))
        self.push_button.on_click(lambda _: self._run(self.prepare_push))
        self.confirm_button.on_click(lambda _: self._run(self.confirm_push))
        self.cancel_button.on_click(lambda _: self.cancel_push())
        self.widget = w.VBox(
            [
                self.indicator,
                w.HBox([self.source_key, self.pull_button, self.push_button]),
                self.confirmation,
                self.message,
            ]
        )
        self.widget.add_class("wb-knock")
        self.indicator.add_class("wb-knock-indicator")
        designer.on_refresh(self.update)
        self.update()

    @property
    def environment(self) -> str:
        return self.designer.environment

    @property
    def compatible(self) -> bool:
        return not self.blockers

    def client(self) -> ManagementClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _run(self, action) -> None:
        """A button's work: an error is shown in the panel (and logged), never lost."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - shown to the user, and logged
            self.last_error = exc
            log.warning("Knock panel action failed", exc_info=exc)
            self.message.value = (
                f"<div class='wb-knock-error' style='color:{RED}'><b>Error</b>"
                f"<pre style='white-space:pre-wrap'>{html.escape(str(exc))}</pre></div>"
            )
        else:
            self.last_error = None

    # -- the indicator -----------------------------------------------------------------------

    def update(self) -> None:
        """Recompute the verdict for the environment being designed."""
        self.blockers = environment_blockers(self.designer.config, self.environment)
        self.push_button.disabled = bool(self.blockers)
        self.indicator.value = self.verdict_html()
        if self.plan is not None and self.plan.body != self._plan_body():
            self.cancel_push()  # the config changed under a pending confirmation

    def verdict(self) -> str:
        """The indicator as text: Knock-compatible, or each thing that keeps the mapping from Knock."""
        env = self.environment
        if not self.blockers:
            return f"Knock-compatible: environment `{env}` can be pushed to a Knock source."
        n = len(self.blockers)
        lines = [
            f"Not Knock-compatible: {n} thing{'s' if n != 1 else ''} in `{env}` only run on the workbench's receiver:"
        ]
        lines += [f"  - {loc}: {msg}" for loc, msg in self.blockers]
        return "\n".join(lines)

    def verdict_html(self) -> str:
        env = html.escape(self.environment)
        if not self.blockers:
            return (
                f"<p class='wb-knock-ok' style='color:{GREEN}'><b>Knock-compatible</b>: "
                f"<code>{env}</code> can be pushed to a Knock source.</p>"
            )
        items = "".join(
            f"<li><code>{html.escape(loc)}</code>: {html.escape(msg)}</li>" for loc, msg in self.blockers
        )
        return (
            f"<div class='wb-knock-blocked' style='color:{RED}'><b>Not Knock-compatible</b>: what keeps "
            f"<code>{env}</code> from being pushed (it runs on the workbench's receiver):<ul>{items}</ul></div>"
        )

    # -- pull and push -----------------------------------------------------------------------

    def pull(self) -> None:
        """Open the Knock source's environment in the designer (the rest of the config is kept)."""
        key = self.source_key.value.strip()
        pulled = pull(self.client(), key, self.environment, base=self.designer.config)
        self.cancel_push()
        self.designer.open_config(pulled.config, self.environment)
        kept = "".join(f"<li>{html.escape(line)}</li>" for line in pulled.kept + pulled.notes)
        self.message.value = (
            f"<p class='wb-knock-pulled'>Pulled <code>{html.escape(key)}</code> "
            f"({html.escape(self.environment)}) from Knock; Save to keep it.</p>"
            + (f"<p>Kept aside, sent back on push:</p><ul>{kept}</ul>" if kept else "")
        )

    def _plan_body(self) -> dict | None:
        try:
            return plan_push(None, self.designer.config, self.environment, self.source_key.value.strip()).body
        except Exception:  # noqa: BLE001 - no body while the config cannot go to Knock
            return None

    def prepare_push(self) -> PushPlan:
        """Compare with what Knock holds and ask for confirmation (nothing is sent yet)."""
        plan = plan_push(self.client(), self.designer.config, self.environment, self.source_key.value.strip())
        self.plan = plan
        changes = "".join(f"<li><code>{html.escape(str(c))}</code></li>" for c in plan.changes)
        self.difference.value = (
            f"<p class='wb-knock-difference'>Push to Knock source <code>{html.escape(plan.key)}</code> "
            f"({html.escape(plan.environment)}): "
            + ("no difference, Knock already holds this." if plan.unchanged else "these changes:")
            + f"</p><ul>{changes}</ul>"
        )
        self.confirmation.layout.display = ""
        self.message.value = ""
        return plan

    def confirm_push(self) -> dict:
        """Send the confirmed plan to Knock."""
        if self.plan is None:
            raise ValueError("nothing to push: press Push first to see the difference")
        plan, self.plan = self.plan, None
        source = push(self.client(), plan)
        self.confirmation.layout.display = "none"
        count = len(source["environment_settings"].get(plan.environment, {}).get("mappings", []))
        self.message.value = (
            f"<p class='wb-knock-pushed' style='color:{GREEN}'>Pushed to Knock source "
            f"<code>{html.escape(plan.key)}</code> ({html.escape(plan.environment)}): {count} mapping(s).</p>"
        )
        return source

    def cancel_push(self) -> None:
        self.plan = None
        self.confirmation.layout.display = "none"
        self.difference.value = ""
