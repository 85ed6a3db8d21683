"""What a push would change in a Knock source: settings and mappings, one line a change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Change:
    kind: str  # added, removed, changed, unchanged
    what: str  # `settings.timestamp_path` or `lead.enriched → users_identify`
    detail: str = ""

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-", "changed": "~", "unchanged": "="}[self.kind]
        return f"{mark} {self.what}" + (f": {self.detail}" if self.detail else "")


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _env(body: Mapping | None) -> Mapping:
    if body is None:
        return {"settings": {}, "mappings": []}
    return next(iter(body["source"]["environment_settings"].values()))


def _keyed(mappings) -> dict[tuple, Mapping]:
    """Mappings by (event type, action type, n-th of that pair), the way a reader matches them up."""
    seen: dict[tuple, int] = {}
    out = {}
    for mapping in mappings:
        pair = (mapping.get("event_type"), mapping.get("action_type"))
        seen[pair] = seen.get(pair, 0) + 1
        out[(*pair, seen[pair])] = mapping
    return out


def _label(key: tuple) -> str:
    event, action, n = key
    return f"{event} → {action}" + (f" #{n}" if n > 1 else "")


def _fields(before: Mapping, after: Mapping) -> list[str]:
    out = []
    params_before = before.get("action_parameters") or {}
    params_after = after.get("action_parameters") or {}
    for name in dict.fromkeys([*params_before, *params_after]):
        if params_before.get(name) != params_after.get(name) or (name in params_before) != (
            name in params_after
        ):
            out.append(f"{name} {_show(params_before.get(name))} → {_show(params_after.get(name))}")
    for name in ("active", "is_deleted"):
        if before.get(name) != after.get(name):
            out.append(f"{name} {_show(before.get(name))} → {_show(after.get(name))}")
    return out


def source_changes(current: Mapping | None, new: Mapping, unchanged: bool = False) -> list[Change]:
    """Changes from `current` (a PUT body made from what Knock holds, or None) to `new`, mapping by mapping."""
    changes: list[Change] = []
    if current is None:
        changes.append(
            Change(
                "added",
                "source",
                f"Knock holds no such source yet; it is created as {_show(new['source']['name'])}",
            )
        )
    else:
        for key in ("name", "description", "custom_image_url"):
            before, after = current["source"].get(key), new["source"].get(key)
            if before != after:
                changes.append(Change("changed", key, f"{_show(before)} → {_show(after)}"))
    before_env, after_env = _env(current), _env(new)
    settings_before, settings_after = before_env.get("settings", {}), after_env.get("settings", {})
    for name in dict.fromkeys([*settings_before, *settings_after]):
        before, after = settings_before.get(name), settings_after.get(name)
        if name not in settings_before and after is not None:
            changes.append(Change("added", f"settings.{name}", _show(after)))
        elif before != after and name in settings_after:  # a setting left out is kept by Knock's upsert
            changes.append(Change("changed", f"settings.{name}", f"{_show(before)} → {_show(after)}"))
    mappings_before, mappings_after = (
        _keyed(before_env.get("mappings", [])),
        _keyed(after_env.get("mappings", [])),
    )
    for key in dict.fromkeys([*mappings_before, *mappings_after]):
        before, after = mappings_before.get(key), mappings_after.get(key)
        if before is None:
            params = ", ".join(f"{k}={_show(v)}" for k, v in (after.get("action_parameters") or {}).items())
            changes.append(Change("added", _label(key), params))
        elif after is None:
            changes.append(Change("removed", _label(key)))
        else:
            fields = _fields(before, after)
            if fields:
                changes.append(Change("changed", _label(key), "; ".join(fields)))
            elif unchanged:
                changes.append(Change("unchanged", _label(key)))
    return changes


def render_changes(changes: list[Change]) -> str:
    real = [c for c in changes if c.kind != "unchanged"]
    if not real:
        return "No difference: Knock already holds this."
    return "\n".join(str(c) for c in changes)
