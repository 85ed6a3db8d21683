"""Mistakes a backfill can catch before its first row: paths that read body keys no column gives."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..clay.bodies import _default_keys, template_column
from ..config import Environment


def body_keys(columns: list[str], template: Mapping[str, Any] | None) -> set[str]:
    """The keys a body built from an export with `columns` can hold (`event` always)."""
    if template is None:
        keys = {key for _, key in _default_keys(tuple(columns))}
    else:
        have = set(columns)
        keys = set()
        for key, spec in template.items():
            column = template_column(spec)
            if column is None or column in have:
                keys.add(key)
    keys.add("event")
    return keys


def _read_paths(env: Environment, event: str | None):
    """(where, path) of every path the environment's mappings (of `event`, when given) read."""
    for mapping in env.mappings:
        if event is not None and mapping.event != event:
            continue
        where = f"mappings[{mapping.index}] ({mapping.event} → {mapping.action})"
        for name, spec in mapping.params.items():
            for path in spec.paths:
                yield f"{where} param `{name}`", path
        for condition in mapping.when:
            yield f"{where} condition", condition.path
    if env.idempotency is not None:
        yield "idempotency key", env.idempotency.path


def unread_paths(
    env: Environment, columns: list[str], template: Mapping[str, Any] | None, event: str | None = None
) -> list[str]:
    """A message for each path of `env`'s mappings (of `event`'s only, when given) that reads a
    body key no column of the export (through the template) produces, with a "did you mean"."""
    keys = body_keys(columns, template)
    problems = []
    for where, path in _read_paths(env, event):
        if path.root != "body":
            continue
        first = path.first_key
        if first is None or first in keys:
            continue
        close = difflib.get_close_matches(first, sorted(keys), n=1)
        hint = f"; did you mean `body.{close[0]}`?" if close else ""
        source = "the body template's keys" if template is not None else "the export's columns"
        problems.append(f"{where}: `{path}` reads body key `{first}`, which none of {source} gives{hint}")
    return list(dict.fromkeys(problems))
