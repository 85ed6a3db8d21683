"""Deploy to Knock: pull a Knock source into a config, push a config to a Knock source, rehearse on both.

The translation (`translate`) is pure; `client` talks to Knock's management API. The functions
here join the two for the CLI (`workbench knock ...`) and the designer's Knock panel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import parse_config
from ..engine import Engine, SourceEvent
from ..errors import NotKnockCompatible, WorkbenchError
from ..sinks import DryRunSink
from .client import DEFAULT_BASE_URL, TOKEN_VARIABLE, ManagementClient
from .diff import Change, render_changes, source_changes
from .translate import (
    Pulled,
    environment_blockers,
    from_knock,
    knock_part,
    request_from_source,
    source_key,
    to_knock,
)

PRODUCTION = "production"

__all__ = [
    "DEFAULT_BASE_URL",
    "TOKEN_VARIABLE",
    "Change",
    "ManagementClient",
    "PushPlan",
    "Pulled",
    "Rehearsal",
    "environment_blockers",
    "from_knock",
    "knock_part",
    "plan_push",
    "pull",
    "push",
    "rehearse",
    "render_changes",
    "request_from_source",
    "source_changes",
    "to_knock",
]


def pull(
    client: ManagementClient, key: str, environment: str, base: Mapping[str, Any] | None = None
) -> Pulled:
    """Read a Knock source's environment as a config (into `base` when given)."""
    source = client.get_source(key, environment)
    if source is None:
        raise WorkbenchError(
            f"Knock has no source `{key}` in environment `{environment}`: check the key in Knock's "
            "dashboard (Platform → Sources) and the environment's slug"
        )
    return from_knock(source, environment, base)


@dataclass
class PushPlan:
    """What a push would send (`body`) and how it differs from what Knock holds (`changes`)."""

    key: str
    environment: str
    body: dict
    current: dict | None
    changes: list[Change] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return all(c.kind == "unchanged" for c in self.changes)

    def render(self) -> str:
        return render_changes(self.changes)


def plan_push(
    client: ManagementClient | None, data: Mapping[str, Any], environment: str, key: str | None = None
) -> PushPlan:
    """Translate the config (refusing what Knock cannot run) and compare it with Knock's source.

    Without a client the plan compares with nothing: the body alone, as an offline dry run.
    """
    key = key or source_key(data)
    blockers = environment_blockers(data, environment)
    if blockers:  # refused before anything is sent, even the read of Knock's source
        raise NotKnockCompatible(blockers, environment)
    current_source = client.get_source(key, environment) if client is not None else None
    if current_source is not None and environment not in (current_source.get("environment_settings") or {}):
        current_source = None
    body = to_knock(data, environment, current_source)
    current = request_from_source(current_source, environment) if current_source is not None else None
    return PushPlan(key, environment, body, current, source_changes(current, body, unchanged=True))


def push(client: ManagementClient, plan: PushPlan) -> dict:
    """Send a plan's body to Knock; returns the source as Knock now holds it."""
    return client.upsert_source(plan.key, plan.environment, plan.body)


@dataclass
class Rehearsal:
    """One body run through Knock's own mappings and through the workbench, side by side."""

    knock: dict  # Knock's rehearse answer, with its log's actions under "actions"
    workbench: dict  # the workbench's outcome (`workbench rehearse`'s shape)
    differences: list[str]

    def to_dict(self) -> dict:
        return {"knock": self.knock, "workbench": self.workbench, "differences": self.differences}


def _knock_actions(client: ManagementClient, key: str, environment: str, log_id: str | None) -> list[dict]:
    if not log_id:
        return []
    logs = client.logs(key, environment, id=log_id, include=["actions"])
    entry = next((e for e in logs.get("entries", []) if e.get("id") == log_id), None)
    return list((entry or {}).get("actions") or [])


def _status(knock_status: str | None) -> str:
    return {"success": "success", "ok": "success", "error": "failed", "failed": "failed"}.get(
        knock_status or "", knock_status or "(none)"
    )


def compare_actions(knock_actions: list[Mapping], ours: list[Mapping]) -> list[str]:
    """Field-by-field differences between Knock's action logs and the workbench's actions, in order.

    The workbench's skipped actions (inactive, or a condition not met) are left out: Knock lists
    only what it ran.
    """
    out = []
    theirs = list(knock_actions)
    ours = [a for a in ours if a.get("status") != "skipped"]
    for i in range(max(len(theirs), len(ours))):
        k = theirs[i] if i < len(theirs) else None
        w = ours[i] if i < len(ours) else None
        if k is None:
            out.append(f"action {i}: the workbench runs {w['action']}, Knock runs nothing")
            continue
        if w is None:
            out.append(f"action {i}: Knock runs {k.get('action_type')}, the workbench runs nothing")
            continue
        label = f"action {i} ({w['action']})"
        if k.get("action_type") != w["action"]:
            out.append(f"action {i}: Knock runs {k.get('action_type')}, the workbench runs {w['action']}")
            continue
        if _status(k.get("action_status")) != w["status"]:
            out.append(
                f"{label}: status is {k.get('action_status')} in Knock, {w['status']} in the workbench"
            )
        knock_payload = k.get("action_payload") or {}
        our_payload = w.get("payload") or {}
        for name in dict.fromkeys([*our_payload, *knock_payload]):
            a, b = knock_payload.get(name), our_payload.get(name)
            if a != b:
                out.append(
                    f"{label}: `{name}` is {json.dumps(a, ensure_ascii=False)} in Knock, "
                    f"{json.dumps(b, ensure_ascii=False)} in the workbench"
                )
    return out


def rehearse(
    client: ManagementClient,
    data: Mapping[str, Any],
    environment: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
) -> Rehearsal:
    """Run `body` through Knock's mappings (rehearse endpoint) and through the workbench's engine."""
    if environment == PRODUCTION:
        raise WorkbenchError(
            "Knock does not rehearse in production; rehearse in development (or another non-production "
            "environment) and push the result"
        )
    config = parse_config(data)
    key = key or source_key(data)
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    outcome = Engine(config, environment, DryRunSink()).process(
        SourceEvent(body, dict(headers), origin="live")
    )
    ours = outcome.to_dict()
    try:
        parsed = json.loads(body)
    except ValueError:
        raise WorkbenchError("the body is not JSON; Knock's rehearse takes a JSON body") from None
    answer = client.rehearse(key, environment, {"body": parsed, "headers": headers})
    actions = _knock_actions(client, key, environment, answer.get("log_id"))
    knock = {**answer, "actions": actions}
    return Rehearsal(knock, ours, compare_actions(actions, ours["actions"]))
