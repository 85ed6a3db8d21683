"""Validate a parsed mapping config into the model, reporting every problem at once."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from ..errors import ConfigError, PathError
from ..paths import compile_path
from ..specs import COERCIONS, ValueSpec, compile_condition, compile_spec, region_problem
from .model import (
    DEFAULT_WINDOW_HOURS,
    SINK_OPTIONS,
    SINK_TYPES,
    ActionMapping,
    Environment,
    EnvRef,
    IdempotencyConfig,
    SinkConfig,
    SourceConfig,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _hint_name(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _env_ref(raw, problems, where, what) -> EnvRef | None:
    if isinstance(raw, dict) and set(raw) == {"$env"} and isinstance(raw["$env"], str) and raw["$env"]:
        return EnvRef(raw["$env"])
    if isinstance(raw, str):
        problems.append(
            (
                where,
                f"{what} must not be written into the mapping file; store it in an "
                'environment variable and write {"$env": "VARIABLE_NAME"} here',
            )
        )
    else:
        problems.append((where, f'{what} must be {{"$env": "VARIABLE_NAME"}}'))
    return None


def _unknown_keys(raw: Mapping, allowed, problems, where):
    for key in raw:
        if key not in allowed:
            problems.append(
                (
                    f"{where}.{key}" if where else str(key),
                    f"unknown key{_hint_name(key, allowed)} (allowed: {', '.join(allowed)})",
                )
            )


def _parse_mapping(raw, index, where, problems) -> ActionMapping | None:
    if not isinstance(raw, dict):
        problems.append(
            (
                where,
                'a mapping is an object like {"event": "lead.enriched", "action": '
                '"users_identify", "params": {...}}',
            )
        )
        return None
    start = len(problems)
    _unknown_keys(raw, ("event", "action", "params", "when", "active", "description"), problems, where)
    event = raw.get("event")
    if not isinstance(event, str) or not event.strip():
        problems.append((f"{where}.event", 'needs the event name sent in body.event, e.g. "lead.enriched"'))
    action = raw.get("action")
    spec = ACTION_TYPES.get(action) if isinstance(action, str) else None
    if spec is None:
        problems.append(
            (
                f"{where}.action",
                f"unknown action {json.dumps(action)}{_hint_name(action, ACTION_TYPES)}; "
                f"use one of {', '.join(EXECUTION_ORDER)}",
            )
        )
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append((f"{where}.active", "`active` is true or false"))
    params_raw = raw.get("params", {})
    params: dict[str, ValueSpec] = {}
    if not isinstance(params_raw, dict):
        problems.append((f"{where}.params", "`params` is an object of parameter name → value spec"))
        params_raw = {}
    for name, value in params_raw.items():
        if spec is not None and name not in spec.params:
            problems.append(
                (
                    f"{where}.params.{name}",
                    f"{spec.name} has no param `{name}`"
                    f"{_hint_name(name, spec.params)}; its params are "
                    f"{', '.join(spec.params)}",
                )
            )
            continue
        compiled = compile_spec(value, problems, f"{where}.params.{name}")
        if compiled is not None:
            params[name] = compiled
    if spec is not None:
        for name in spec.params:
            if name in spec.required and name not in params_raw:
                problems.append(
                    (
                        f"{where}.params.{name}",
                        f"{spec.name} requires `{name}`; map it to a path "
                        'such as "body.email" or a {"value": ...}',
                    )
                )
    when_raw = raw.get("when", [])
    if isinstance(when_raw, dict):
        when_raw = [when_raw]
    if not isinstance(when_raw, list):
        problems.append((f"{where}.when", "`when` is a list of conditions"))
        when_raw = []
    when = [compile_condition(c, problems, f"{where}.when[{i}]") for i, c in enumerate(when_raw)]
    if len(problems) > start:
        return None
    ordered = {name: params[name] for name in spec.params if name in params}
    return ActionMapping(
        event=event.strip(),
        action=action,
        params=ordered,
        when=tuple(when),
        active=active,
        index=index,
        raw=raw,
    )


def _parse_sink(raw, problems, where) -> SinkConfig:
    if raw is None:
        return SinkConfig("local")
    if isinstance(raw, str):
        if raw in SINK_TYPES and raw != "knock":
            return SinkConfig(raw)
        if raw == "knock":
            problems.append(
                (
                    where,
                    'the knock sink needs an API key: {"type": "knock", "api_key": '
                    '{"$env": "KNOCK_API_KEY"}}',
                )
            )
        else:
            problems.append(
                (
                    where,
                    f"unknown sink {json.dumps(raw)}{_hint_name(raw, SINK_TYPES)}; "
                    f'use "local", "dry-run" or a knock sink object',
                )
            )
        return SinkConfig("dry-run")
    if not isinstance(raw, dict):
        problems.append((where, '`sink` is "local", "dry-run" or {"type": "knock", ...}'))
        return SinkConfig("dry-run")
    kind = raw.get("type")
    if kind not in SINK_TYPES:
        problems.append(
            (f"{where}.type", f"unknown sink type {json.dumps(kind)}; use one of {', '.join(SINK_TYPES)}")
        )
        return SinkConfig("dry-run")
    _unknown_keys(raw, ("type", "api_key", "base_url", *SINK_OPTIONS), problems, where)
    api_key = None
    if kind == "knock":
        api_key = _env_ref(raw.get("api_key"), problems, f"{where}.api_key", "the Knock API key")
    base_url = raw.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or not re.match(r"https?://", base_url)):
        problems.append((f"{where}.base_url", '`base_url` is an http(s) URL such as "https://api.knock.app"'))
    options = {k: raw[k] for k in SINK_OPTIONS if k in raw}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append((f"{where}.{key}", f"`{key}` is a non-negative number"))
    return SinkConfig(kind, api_key, base_url, options)


def _parse_idempotency(raw, problems, where) -> IdempotencyConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append((where, '`idempotency` is {"key": "body.row_id", "window_hours": 24} or null'))
        return None
    _unknown_keys(raw, ("key", "window_hours"), problems, where)
    key = raw.get("key")
    hashed = isinstance(key, dict)
    if hashed:
        if set(key) != {"hash"} or not isinstance(key["hash"], str):
            problems.append((f"{where}.key", '`key` is a path or {"hash": "body"}'))
            return None
        key = key["hash"]
    if not isinstance(key, str):
        problems.append(
            (
                f"{where}.key",
                'needs a path such as "body.row_id", or {"hash": "body"} to dedupe unchanged re-runs',
            )
        )
        return None
    try:
        path = compile_path(key)
    except PathError as exc:
        problems.append((f"{where}.key", str(exc)))
        return None
    hours = raw.get("window_hours", DEFAULT_WINDOW_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 365:
        problems.append((f"{where}.window_hours", "`window_hours` is a number of hours between 0 and 8760"))
        return None
    return IdempotencyConfig(path=path, hashed=hashed, window=timedelta(hours=hours))


def _parse_environment(name, raw, problems, where) -> Environment | None:
    start = len(problems)
    if not _NAME.match(str(name)):
        problems.append((where, "environment names use letters, digits, `-`, `_` and `.`"))
    if not isinstance(raw, dict):
        problems.append((where, "an environment is an object with signing_secrets, sink and mappings"))
        return None
    _unknown_keys(raw, ("signing_secrets", "idempotency", "sink", "mappings", "description"), problems, where)
    secrets_raw = raw.get("signing_secrets", [])
    if not isinstance(secrets_raw, list):
        secrets_raw = [secrets_raw]
    secrets = [
        _env_ref(s, problems, f"{where}.signing_secrets[{i}]", "a signing secret")
        for i, s in enumerate(secrets_raw)
    ]
    idempotency = _parse_idempotency(raw.get("idempotency"), problems, f"{where}.idempotency")
    sink = _parse_sink(raw.get("sink", "local"), problems, f"{where}.sink")
    mappings_raw = raw.get("mappings", [])
    if not isinstance(mappings_raw, list):
        problems.append((f"{where}.mappings", "`mappings` is a list"))
        mappings_raw = []
    mappings = [_parse_mapping(m, i, f"{where}.mappings[{i}]", problems) for i, m in enumerate(mappings_raw)]
    if len(problems) > start:
        return None
    by_event: dict[str, list[ActionMapping]] = {}
    for mapping in mappings:
        by_event.setdefault(mapping.event, []).append(mapping)
    ordered = {
        event: tuple(sorted(items, key=lambda m: (EXECUTION_ORDER.index(m.action), m.index)))
        for event, items in by_event.items()
    }
    return Environment(
        name=name,
        signing_secrets=tuple(secrets),
        idempotency=idempotency,
        sink=sink,
        mappings=tuple(mappings),
        by_event=ordered,
    )


def _check_body_template(raw, problems, where):
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append((where, "`body_template` maps body keys to Clay column names"))
        return None
    for key, spec in raw.items():
        loc = f"{where}.{key}"
        if isinstance(spec, str):
            continue
        if isinstance(spec, dict) and set(spec) == {"value"}:
            continue
        if isinstance(spec, dict) and "column" in spec and set(spec) <= {"column", "as", "region"}:
            if not isinstance(spec["column"], str):
                problems.append((f"{loc}.column", "`column` is the Clay column name"))
            if spec.get("as") is not None and spec["as"] not in COERCIONS:
                problems.append((f"{loc}.as", f"use one of {', '.join(COERCIONS)}"))
            elif "region" in spec and (problem := region_problem(spec["region"], spec.get("as"))):
                problems.append((f"{loc}.region", problem))
            continue
        problems.append(
            (loc, 'write a column name, {"column": "ICP Score", "as": "number"} or {"value": ...}')
        )
    return raw


# Knock source settings that have a counterpart in the config itself, so never in the `knock` section.
_TRANSLATED_SETTINGS = {
    "event_type_path": "event_type_path",
    "idempotency_key_path": "the environment's idempotency",
}


def _check_knock_section(raw, problems) -> None:
    """`knock`: what a Knock source holds that the workbench has no counterpart for, kept to be sent back."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.append(
            ("knock", '`knock` is an object such as {"source_key": "clay", "environments": {...}}')
        )
        return
    _unknown_keys(
        raw, ("source_key", "name", "description", "custom_image_url", "environments"), problems, "knock"
    )
    for key in ("source_key", "name"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            problems.append((f"knock.{key}", f"`{key}` is the Knock source's {key.replace('_', ' ')} (text)"))
    envs = raw.get("environments", {})
    if not isinstance(envs, dict):
        problems.append(
            ("knock.environments", "`environments` maps a Knock environment to its kept settings")
        )
        return
    for name, env in envs.items():
        where = f"knock.environments.{name}"
        if not isinstance(env, dict):
            problems.append((where, 'an environment is {"settings": {...}, "mappings": [...]}'))
            continue
        _unknown_keys(env, ("settings", "mappings"), problems, where)
        settings = env.get("settings", {})
        if not isinstance(settings, dict):
            problems.append((f"{where}.settings", "`settings` is an object of Knock source settings"))
        else:
            for key, counterpart in _TRANSLATED_SETTINGS.items():
                if key in settings:
                    problems.append(
                        (f"{where}.settings.{key}", f"set it in the config's {counterpart} instead")
                    )
        kept = env.get("mappings", [])
        if not isinstance(kept, list):
            problems.append((f"{where}.mappings", "`mappings` is a list of Knock action mappings"))
            continue
        for i, mapping in enumerate(kept):
            if not (
                isinstance(mapping, dict)
                and isinstance(mapping.get("event_type"), str)
                and isinstance(mapping.get("action_type"), str)
            ):
                problems.append(
                    (
                        f"{where}.mappings[{i}]",
                        "a kept Knock mapping has at least `event_type` and `action_type`",
                    )
                )


def parse_config(data: Any, origin: str | None = None) -> SourceConfig:
    """Validate a parsed config; raise `ConfigError` listing every problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise ConfigError(
            [("", "the config must be a JSON object with source, environments and mappings")], origin
        )
    _unknown_keys(
        data,
        ("$schema", "description", "source", "event_type_path", "environments", "clay", "knock"),
        problems,
        "",
    )
    source = data.get("source")
    if not isinstance(source, str) or not _NAME.match(source):
        problems.append(
            ("source", 'needs the source name used in the URL, e.g. "clay" (letters, digits, `-`, `_`, `.`)')
        )
    event_type_path = data.get("event_type_path", "body.event")
    if not isinstance(event_type_path, str):
        problems.append(("event_type_path", 'needs the path of the event name, e.g. "body.event"'))
        event_type_path = None
    else:
        try:
            event_type_path = compile_path(event_type_path)
        except PathError as exc:
            problems.append(("event_type_path", str(exc)))
            event_type_path = None
    envs_raw = data.get("environments")
    environments: dict[str, Environment] = {}
    if not isinstance(envs_raw, dict) or not envs_raw:
        problems.append(("environments", 'needs at least one environment, e.g. {"development": {...}}'))
    else:
        for name, raw in envs_raw.items():
            env = _parse_environment(name, raw, problems, f"environments.{name}")
            if env is not None:
                environments[name] = env
    clay = data.get("clay", {})
    template = None
    if not isinstance(clay, dict):
        problems.append(("clay", '`clay` is an object such as {"body_template": {...}}'))
    else:
        _unknown_keys(clay, ("body_template",), problems, "clay")
        template = _check_body_template(clay.get("body_template"), problems, "clay.body_template")
    _check_knock_section(data.get("knock"), problems)
    if problems:
        raise ConfigError(problems, origin)
    return SourceConfig(
        source=source,
        event_type_path=event_type_path,
        environments=environments,
        body_template=template,
        raw=data,
        origin=origin,
    )
