"""Checks of the draft config as it is typed: paths that read no body key, template columns the
export does not have, each with a "did you mean" from the body's keys or the export's columns.

They are warnings: the config is valid, but a typo like `body.emial` would make every row fail.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..colours import AMBER, AMBER_TINT
from ..errors import PathError
from ..paths import compile_path
from .draft import body_path, template_column

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True)
class Check:
    where: str  # e.g. environments.development.mappings[0].params.id
    message: str
    level: str = "warning"


def spec_paths(spec: Any) -> list[str]:
    """The path texts a parameter's value spec reads."""
    if isinstance(spec, str):
        return [spec]
    if not isinstance(spec, Mapping):
        return []
    if isinstance(spec.get("path"), str):
        return [spec["path"]]
    if isinstance(spec.get("template"), str):
        return _PLACEHOLDER.findall(spec["template"])
    if isinstance(spec.get("first"), list):
        return [p for option in spec["first"] for p in spec_paths(option)]
    return []


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option `word` was most likely meant to be (case aside), or None when none is close."""
    options = list(options)
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def check_path(text: str, keys: list[str]) -> str | None:
    """Why a path reads nothing from bodies with `keys` (None when it reads one of them)."""
    try:
        path = compile_path(text)
    except PathError:
        return None  # the config's own validation reports it
    key = path.first_key
    if path.root != "body" or key is None or key in keys:
        return None
    meant = closest(key, keys)
    hint = ""
    if meant is not None:
        typed = f"body.{key}"
        rest = text[len(typed) :] if text.startswith(typed) else ""
        hint = f" Did you mean `{body_path(meant)}{rest}`?"
    return f"path `{text}` reads `{key}`, which the body template does not send.{hint}"


def check_config(config: Mapping[str, Any], environment: str, event: str, columns: list[str]) -> list[Check]:
    """The paths of `event`'s mappings (and the idempotency key) checked against the body
    template's keys, and every template column against the export's columns."""
    checks: list[Check] = []
    template = (config.get("clay") or {}).get("body_template") or {}
    keys = list(template)
    for key, entry in template.items():
        column = template_column(entry)
        if column is not None and column not in columns:
            meant = closest(column, columns)
            hint = f' Did you mean "{meant}"?' if meant else ""
            checks.append(
                Check(f"clay.body_template.{key}", f'column "{column}" is not in the export.{hint}')
            )
    env = (config.get("environments") or {}).get(environment) or {}
    base = f"environments.{environment}"
    idem = env.get("idempotency")
    if isinstance(idem, Mapping):
        key = idem.get("key")
        text = key.get("hash") if isinstance(key, Mapping) else key
        if isinstance(text, str) and (problem := check_path(text, keys)):
            checks.append(Check(f"{base}.idempotency.key", problem))
    for i, mapping in enumerate(env.get("mappings") or []):
        if not isinstance(mapping, Mapping) or mapping.get("event") != event:
            continue
        where = f"{base}.mappings[{i}]"
        for name, spec in (mapping.get("params") or {}).items():
            for text in spec_paths(spec):
                if problem := check_path(text, keys):
                    checks.append(Check(f"{where}.params.{name}", problem))
        when = mapping.get("when") or []
        for j, condition in enumerate(when if isinstance(when, list) else [when]):
            text = condition.get("path") if isinstance(condition, Mapping) else None
            if isinstance(text, str) and (problem := check_path(text, keys)):
                checks.append(Check(f"{where}.when[{j}].path", problem))
    return checks


def render_checks(checks: list[Check]) -> str:
    if not checks:
        return ""
    items = "".join(f"<li><code>{html.escape(c.where)}</code>: {html.escape(c.message)}</li>" for c in checks)
    return (
        f"<div class='wb-checks' style='border:1px solid {AMBER};background:{AMBER_TINT};padding:4px 8px'>"
        f"<b>Check</b> (Save still works):<ul style='margin:0'>{items}</ul></div>"
    )
