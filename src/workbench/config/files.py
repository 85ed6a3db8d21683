"""Mapping config files: read (refusing keys given twice), write atomically in a stable key order."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path as FilePath
from typing import Any

from ..actions import ACTION_TYPES
from ..errors import ConfigError
from .model import SourceConfig
from .parsing import parse_config


def load_config(path: str | os.PathLike) -> SourceConfig:
    """Read and validate a config file."""
    origin = str(path)
    try:
        text = FilePath(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([("", f"file not found: {origin}")], origin) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([("", f"cannot read the file: {exc}")], origin) from None
    repeated: list[tuple[int, str]] = []  # (id of the object, key) for keys given twice in one object
    objects: list[dict] = []  # every object, so that no id is reused while they are located

    def pairs(items: list[tuple[str, Any]]) -> dict:
        obj: dict = {}
        objects.append(obj)
        for key, value in items:
            if key in obj:
                repeated.append((id(obj), key))
            obj[key] = value
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [("", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")], origin
        ) from None
    if repeated:
        where = _locations(data)
        raise ConfigError(
            [
                (
                    ".".join(filter(None, [where[obj], key])) if obj in where else key,
                    f"`{key}` is given twice in one object; JSON keeps only the last, so merge them"
                    + ("" if obj in where else " (inside a value that is itself given twice)"),
                )
                for obj, key in repeated
            ],
            origin,
        )
    return parse_config(data, origin)


def _locations(data: Any, path: str = "") -> dict[int, str]:
    """id of every object in `data` -> its dotted location (list items as `mappings[2]`)."""
    found: dict[int, str] = {}
    stack = [(data, path)]
    while stack:
        value, here = stack.pop()
        if isinstance(value, dict):
            found[id(value)] = here
            stack.extend((v, f"{here}.{k}" if here else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{here}[{i}]") for i, v in enumerate(value))
    return found


_KEY_ORDER = {
    "": ("$schema", "description", "source", "event_type_path", "environments", "clay", "knock"),
    "environment": ("description", "signing_secrets", "idempotency", "sink", "mappings"),
    "mapping": ("event", "action", "description", "active", "when", "params"),
}


def _ordered(obj: Mapping, order) -> dict:
    known = [k for k in order if k in obj]
    return {**{k: obj[k] for k in known}, **{k: obj[k] for k in obj if k not in order}}


def canonical_config(data: Mapping[str, Any]) -> dict:
    """The config with keys in a stable order (params in the action's own order)."""
    out = _ordered(data, _KEY_ORDER[""])
    envs = {}
    for name, env in (data.get("environments") or {}).items():
        env = _ordered(env, _KEY_ORDER["environment"])
        mappings = []
        for m in env.get("mappings", []):
            m = _ordered(m, _KEY_ORDER["mapping"])
            spec = ACTION_TYPES.get(m.get("action"))
            if spec and isinstance(m.get("params"), dict):
                m["params"] = _ordered(m["params"], spec.params)
            mappings.append(m)
        env["mappings"] = mappings
        envs[name] = env
    if envs:
        out["environments"] = envs
    return out


def dump_config(data: Mapping[str, Any]) -> str:
    """Pretty-printed config text with a stable key order, so diffs stay readable."""
    return json.dumps(canonical_config(data), indent=2, ensure_ascii=False) + "\n"


def save_config(data: Mapping[str, Any], path: str | os.PathLike) -> SourceConfig:
    """Validate, then write atomically; return the loaded config."""
    config = parse_config(data, str(path))
    target = FilePath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(dump_config(data), encoding="utf-8")
    os.replace(tmp, target)
    return config
