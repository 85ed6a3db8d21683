"""A mapping config's environment as a Knock source's environment settings, and back.

Knock's sources map an event with plain dot-notation paths into the event (`body.email`,
`headers.x-clay-table-id`) and take a few parameters as fixed options (a workflow's or an
audience's key, an object's collection). Everything else the workbench can do (conditions,
templates, `first` lists, coercions, defaults, literal values, content-hash idempotency keys,
other windows, `workflows_cancel`) runs on the workbench's receiver only, so `to_knock` refuses
it with its location and what to do. `from_knock` reads a source back; what the config has no
counterpart for (a preprocess script, verification, timestamp path, mappings it cannot express)
is kept in the config's `knock` section, so that a push sends it back unchanged.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..actions import ACTION_TYPES, EXECUTION_ORDER
from ..config import DEFAULT_WINDOW_HOURS, parse_config
from ..errors import ConfigError, NotKnockCompatible, PathError, WorkbenchError
from ..paths import compile_path

# Knock's management API lists these action types (mapi-openapi.yml, SourceRequest mappings).
KNOCK_ACTIONS = tuple(a for a in EXECUTION_ORDER if a != "workflows_cancel")
# Parameters Knock takes as a fixed option (the thing itself), not as a path into the event.
OPTION_PARAMS = {
    ("workflows_trigger", "key"): "the workflow key",
    ("audiences_add_member", "key"): "the audience key",
    ("audiences_remove_member", "key"): "the audience key",
    ("objects_set", "collection"): "the object collection",
    ("objects_delete", "collection"): "the object collection",
    ("objects_subscribe", "collection"): "the object collection",
    ("objects_unsubscribe", "collection"): "the object collection",
}
# Settings Knock sets itself (the receiving URL, legacy CDP switches): read, never sent.
READ_ONLY_SETTINGS = ("endpoint", "enforce_idempotency", "handle_identifies")
MAPPING_FIELDS = ("event_type", "action_type", "action_parameters", "active", "is_deleted")
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def is_option(action: str, param: str) -> bool:
    return (action, param) in OPTION_PARAMS


def knock_path_problem(text: str) -> str | None:
    """Why a path is not one Knock's dot notation reads, or None when it is."""
    try:
        compile_path(text)
    except PathError as exc:
        return str(exc)
    if "[" in text:
        return (
            f"Knock reads plain dot-notation paths; `{text}` uses the workbench's own `[...]` steps. "
            "Send the value under a plain key (the Clay body template can name it) and map `body.<key>`"
        )
    return None


# -- config -> Knock -----------------------------------------------------------------------


def _param_to_knock(action: str, name: str, spec: Any, where: str, problems: list) -> Any:
    label = OPTION_PARAMS.get((action, name))
    if label is not None:
        if (
            isinstance(spec, dict)
            and set(spec) == {"value"}
            and isinstance(spec["value"], str)
            and spec["value"]
        ):
            return spec["value"]
        example = "new-high-intent-lead" if name == "key" else "accounts"
        problems.append(
            (
                where,
                f"Knock takes {label} itself here, not a value read from the event; "
                f'write {{"value": "{example}"}}',
            )
        )
        return None
    if isinstance(spec, dict) and set(spec) == {"value"} and spec["value"] is None:
        return None  # Knock's null: not mapped
    if isinstance(spec, dict) and set(spec) == {"path"}:
        spec = spec["path"]
    if isinstance(spec, str):
        problem = knock_path_problem(spec)
        if problem:
            problems.append((where, problem))
        return spec
    kind = next(
        (k for k in ("value", "template", "first", "path") if isinstance(spec, dict) and k in spec), None
    )
    body_key = name if name != "data" else "trigger_data"
    todo = {
        "value": (
            f"Knock reads `{name}` from the event, so a fixed value only runs on the workbench's receiver. "
            f'Put it in the body (clay.body_template: "{body_key}": {{"value": ...}}) and map `body.{body_key}`'
        ),
        "template": (
            "Knock's sources have no templates. Build the text in Clay (a formula column), "
            "send it in the body and map its path"
        ),
        "first": (
            "Knock maps each parameter to one path. Fill one body key in Clay from whichever column has "
            "a value (a formula column), and map that path"
        ),
        "path": (
            "Knock passes values as they arrive, with no coercion or default. Send the value typed "
            'from Clay (the body template\'s {"column": C, "as": T} does this) and map the plain path'
        ),
    }
    problems.append((where, todo.get(kind, "Knock maps a parameter to a plain path")))
    return None


def environment_blockers(data: Mapping[str, Any], environment: str) -> list[tuple[str, str]]:
    """What keeps `environment` of the config from being pushed to Knock (empty when it can go)."""
    try:
        config = parse_config(data)
        config.environment(environment)
    except ConfigError as exc:
        return [(loc, f"the config itself: {msg}") for loc, msg in exc.problems]
    problems: list[tuple[str, str]] = []
    _settings_to_knock(data, environment, problems)
    _mappings_to_knock(data, environment, problems)
    return problems


def knock_part(data: Mapping[str, Any], environment: str) -> dict:
    """A copy of the config whose `environment` keeps only what Knock's sources can run: its
    mappings without blockers, and its idempotency if Knock has it (otherwise none)."""
    out = copy.deepcopy(dict(data))
    env = out["environments"][environment]
    prefix = f"environments.{environment}."
    blocked = {
        loc[len(prefix) :] for loc, _ in environment_blockers(data, environment) if loc.startswith(prefix)
    }
    if any(loc.startswith("idempotency") for loc in blocked):
        env["idempotency"] = None
    env["mappings"] = [
        m
        for i, m in enumerate(env.get("mappings", []))
        if not any(loc == f"mappings[{i}]" or loc.startswith(f"mappings[{i}].") for loc in blocked)
    ]
    return out


def _settings_to_knock(data: Mapping, environment: str, problems: list) -> dict:
    env = data["environments"][environment]
    where = f"environments.{environment}.idempotency"
    settings: dict[str, Any] = {}
    event_type_path = data.get("event_type_path", "body.event")
    problem = knock_path_problem(event_type_path)
    if problem:
        problems.append(("event_type_path", problem))
    settings["event_type_path"] = event_type_path
    idempotency = env.get("idempotency")
    key = None
    if idempotency is not None:
        key = idempotency.get("key")
        if isinstance(key, dict):
            problems.append(
                (
                    f"{where}.key",
                    "Knock dedupes on a key read from the event, not on a hash of its content. "
                    "Send a stable row id (or a hash made in Clay) in the body and use its path",
                )
            )
            key = None
        else:
            problem = knock_path_problem(key)
            if problem:
                problems.append((f"{where}.key", problem))
        hours = idempotency.get("window_hours", DEFAULT_WINDOW_HOURS)
        if hours != DEFAULT_WINDOW_HOURS:
            problems.append(
                (
                    f"{where}.window_hours",
                    f"Knock's idempotency window is {DEFAULT_WINDOW_HOURS} hours (another one only by "
                    f"asking Knock's support); set window_hours to {DEFAULT_WINDOW_HOURS}",
                )
            )
    settings["idempotency_key_path"] = key
    kept = _kept(data, environment)
    settings.update(copy.deepcopy(kept.get("settings", {})))
    return settings


def _mappings_to_knock(data: Mapping, environment: str, problems: list) -> list[dict]:
    out = []
    for i, mapping in enumerate(data["environments"][environment].get("mappings", [])):
        where = f"environments.{environment}.mappings[{i}]"
        action = mapping["action"]
        if action not in KNOCK_ACTIONS:
            problems.append(
                (
                    f"{where}.action",
                    f"Knock's sources cannot be given a {action} mapping through its management API "
                    f"(it takes {', '.join(KNOCK_ACTIONS)}); set it up in Knock's dashboard, or keep it "
                    "on the workbench's receiver and remove it from the config you push",
                )
            )
            continue
        if mapping.get("when"):
            problems.append(
                (
                    f"{where}.when",
                    "Knock's sources have no conditions: every event of this type runs the mapping. "
                    "Let Clay send a distinct event name for the rows that qualify (a formula column "
                    "choosing the event), map that event, and drop `when`",
                )
            )
        parameters = {
            name: _param_to_knock(action, name, spec, f"{where}.params.{name}", problems)
            for name, spec in mapping.get("params", {}).items()
        }
        ordered = {name: parameters[name] for name in ACTION_TYPES[action].params if name in parameters}
        out.append(
            {
                "event_type": mapping["event"],
                "action_type": action,
                "action_parameters": ordered,
                "active": mapping.get("active", True),
                "is_deleted": False,
            }
        )
    return out


def _kept(data: Mapping, environment: str) -> Mapping[str, Any]:
    return ((data.get("knock") or {}).get("environments") or {}).get(environment) or {}


def source_key(data: Mapping[str, Any]) -> str:
    """The Knock source a config goes to: `knock.source_key`, else the config's `source`."""
    return (data.get("knock") or {}).get("source_key") or data["source"]


def to_knock(data: Mapping[str, Any], environment: str, current: Mapping[str, Any] | None = None) -> dict:
    """The body of `PUT /v1/sources/{key}?environment=` for one environment of the config.

    Raises `NotKnockCompatible` listing everything Knock's sources cannot run. `current` (the
    source as Knock holds it, if any) gives the name when the config keeps none, and its workflow
    trigger mappings that the config no longer has are sent marked deleted, as Knock requires.
    """
    blockers = environment_blockers(data, environment)
    if blockers:
        raise NotKnockCompatible(blockers, environment)
    problems: list = []
    settings = _settings_to_knock(data, environment, problems)
    mappings = _mappings_to_knock(data, environment, problems)
    mappings += copy.deepcopy(list(_kept(data, environment).get("mappings", [])))
    if current is not None:
        held = _env_request(request_from_source(current, environment))["mappings"]
        mappings = _in_held_order(mappings + _retired_triggers(mappings, held), held)
    knock = data.get("knock") or {}
    name = knock.get("name") or (current or {}).get("name") or data["source"]
    return _source_body(name, knock, environment, settings, mappings)


def _source_body(name: str, described: Mapping, environment: str, settings: dict, mappings: list) -> dict:
    """A PUT body: the source's name, its description and image when `described` has them, one environment."""
    source: dict[str, Any] = {"name": name}
    for key in ("description", "custom_image_url"):
        if described.get(key) is not None:
            source[key] = described[key]
    source["environment_settings"] = {environment: {"settings": settings, "mappings": mappings}}
    return {"source": source}


def _trigger_key(mapping: Mapping) -> tuple:
    return (mapping.get("event_type"), (mapping.get("action_parameters") or {}).get("key"))


def _in_held_order(mappings: list[dict], held: list[dict]) -> list[dict]:
    """Mappings Knock already holds keep their place in its list (so an unchanged source is sent as
    it is); the others follow in the config's order. Knock's execution order does not depend on it."""
    free = list(range(len(held)))
    places = []
    for i, mapping in enumerate(mappings):
        place = next((j for j in free if held[j] == mapping), None)
        if place is None:
            places.append((len(held), i))
        else:
            free.remove(place)
            places.append((place, i))
    return [mappings[i] for _, i in sorted(places)]


def _retired_triggers(mappings: list[dict], held: list[dict]) -> list[dict]:
    wanted = {_trigger_key(m) for m in mappings if m.get("action_type") == "workflows_trigger"}
    retired = []
    for mapping in held:
        live = mapping["action_type"] == "workflows_trigger" and not mapping.get("is_deleted")
        if live and _trigger_key(mapping) not in wanted:
            retired.append({**mapping, "is_deleted": True})
    return retired


# -- Knock -> config -----------------------------------------------------------------------


def request_from_source(source: Mapping[str, Any], environment: str) -> dict:
    """A source as Knock returns it (GET), as the PUT body that would set it as it is."""
    settings_all = source.get("environment_settings") or {}
    if environment not in settings_all:
        held = ", ".join(settings_all) or "none"
        raise WorkbenchError(
            f"Knock's source `{source.get('key')}` has no settings for environment `{environment}` "
            f"(it returned: {held}); check the environment's slug in Knock's dashboard"
        )
    env = settings_all[environment]
    settings = {
        k: copy.deepcopy(v) for k, v in (env.get("settings") or {}).items() if k not in READ_ONLY_SETTINGS
    }
    mappings = [{k: copy.deepcopy(m[k]) for k in MAPPING_FIELDS if k in m} for m in env.get("mappings") or []]
    return _source_body(source["name"], source, environment, settings, mappings)


def _env_request(body: Mapping) -> dict:
    return next(iter(body["source"]["environment_settings"].values()))


@dataclass
class Pulled:
    """A pulled config, with what was kept in its `knock` section and why."""

    config: dict
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _param_from_knock(action: str, name: str, value: Any) -> tuple[Any, str | None]:
    """(the config's value spec, None) or (None, why it cannot be expressed)."""
    if name not in ACTION_TYPES[action].params:
        return None, f"`{name}` is not a parameter the workbench knows for {action}"
    if value is None:
        return {"value": None}, None
    if is_option(action, name):
        if isinstance(value, str) and value:
            return {"value": value}, None
        return (
            None,
            f"`{name}` holds {json.dumps(value)}, where the workbench expects {OPTION_PARAMS[(action, name)]}",
        )
    if isinstance(value, str):
        problem = knock_path_problem(value)
        if problem is None and compile_path(value).root in ("body", "headers"):
            return value, None
        return (
            None,
            f"`{name}` reads `{value}`, which the workbench's paths (rooted at body or headers) cannot",
        )
    return None, f"`{name}` holds {json.dumps(value)}, not a path"


def _mapping_from_knock(mapping: Mapping) -> tuple[dict | None, str | None]:
    action = mapping.get("action_type")
    if mapping.get("is_deleted"):
        return None, "marked deleted in Knock (kept until the workflow is committed there)"
    if action not in KNOCK_ACTIONS:
        return None, f"action {action!r} is not one the workbench runs"
    params = {}
    for name, value in (mapping.get("action_parameters") or {}).items():
        spec, why = _param_from_knock(action, name, value)
        if why:
            return None, why
        params[name] = spec
    missing = [
        p for p in ACTION_TYPES[action].params if p in ACTION_TYPES[action].required and p not in params
    ]
    if missing:
        return None, f"it maps no {', '.join(missing)}, which the workbench needs to run {action}"
    out: dict[str, Any] = {"event": mapping["event_type"], "action": action}
    if mapping.get("active", True) is False:
        out["active"] = False
    out["params"] = {name: params[name] for name in ACTION_TYPES[action].params if name in params}
    return out, None


def _new_environment(name: str) -> dict:
    secret = "CLAY_SIGNING_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return {"signing_secrets": [{"$env": secret}], "idempotency": None, "sink": "local", "mappings": []}


def from_knock(source: Mapping[str, Any], environment: str, base: Mapping[str, Any] | None = None) -> Pulled:
    """The config for one environment of a Knock source (GET's answer).

    With `base` (a config to pull into), everything of it that Knock does not hold is kept: other
    environments, signing secrets, sink, the Clay body template, and mapping descriptions.
    """
    body = request_from_source(source, environment)
    wanted = body["source"]
    env_request = _env_request(body)
    key = source.get("key") or wanted["name"]
    if base is not None:
        config = copy.deepcopy(dict(base))
    else:
        name = key if _SIMPLE_NAME.match(key) else "clay"
        config = {"source": name, "event_type_path": "body.event", "environments": {}}
    pulled = Pulled(config)
    envs = config.setdefault("environments", {})
    previous = envs.get(environment) or _new_environment(environment)
    env = dict(previous)

    settings = dict(env_request["settings"])
    event_type_path = settings.pop("event_type_path", None)
    if event_type_path is None:
        pulled.notes.append("Knock holds no event type path; the workbench reads body.event")
        config.pop("event_type_path", None)
    elif knock_path_problem(event_type_path):
        settings["event_type_path"] = event_type_path  # kept by the refusal below
    else:
        config["event_type_path"] = event_type_path
    idempotency_key_path = settings.pop("idempotency_key_path", None)
    if idempotency_key_path is None or not knock_path_problem(idempotency_key_path):
        env["idempotency"] = (
            None
            if idempotency_key_path is None
            else {"key": idempotency_key_path, "window_hours": DEFAULT_WINDOW_HOURS}
        )
    else:
        raise WorkbenchError(
            f"Knock's idempotency key path `{idempotency_key_path}` is not one the workbench reads; "
            "change it in Knock's dashboard to a dot-notation path such as body.row_id, then pull again"
        )
    if "event_type_path" in settings:
        raise WorkbenchError(
            f"Knock's event type path `{event_type_path}` is not one the workbench reads; "
            "change it in Knock's dashboard to a dot-notation path such as body.event, then pull again"
        )
    for name in settings:
        pulled.kept.append(f"setting `{name}` (the workbench has no counterpart; sent back as it is on push)")

    described = {}
    for mapping in previous.get("mappings", []) if environment in envs else []:
        plain = {k: v for k, v in mapping.items() if k != "description"}
        if "description" in mapping:
            described[json.dumps(plain, sort_keys=True)] = mapping["description"]
    mappings, kept_mappings = [], []
    for i, raw in enumerate(env_request["mappings"]):
        mapping, why = _mapping_from_knock(raw)
        if mapping is None:
            kept_mappings.append(raw)
            pulled.kept.append(f"mapping {i} ({raw.get('event_type')} → {raw.get('action_type')}): {why}")
            continue
        description = described.get(json.dumps(mapping, sort_keys=True))
        if description is not None:
            mapping = {**mapping, "description": description}
        mappings.append(mapping)
    env["mappings"] = mappings
    envs[environment] = env

    knock = dict(config.get("knock") or {})
    knock_envs = dict(knock.get("environments") or {})
    kept_env = {}
    if settings:
        kept_env["settings"] = settings
    if kept_mappings:
        kept_env["mappings"] = kept_mappings
    if kept_env:
        knock_envs[environment] = kept_env
    else:
        knock_envs.pop(environment, None)
    knock["environments"] = knock_envs
    knock["source_key"] = key
    knock["name"] = wanted["name"]
    for field_name in ("description", "custom_image_url"):
        knock.pop(field_name, None)
        if wanted.get(field_name) is not None:
            knock[field_name] = wanted[field_name]
    for field_name, default in (("source_key", config["source"]), ("name", config["source"])):
        if knock.get(field_name) == default:
            del knock[field_name]
    if not knock["environments"]:
        del knock["environments"]
    if knock:
        config["knock"] = knock
    else:
        config.pop("knock", None)
    parse_config(config)  # what was pulled is a config the workbench runs
    return pulled
