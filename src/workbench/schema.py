"""JSON Schema (draft 2020-12) of the mapping config format, printed by `workbench schema`."""

from __future__ import annotations

from .actions import ACTION_TYPES, EXECUTION_ORDER
from .specs import COERCIONS, OPERATORS

# Notes for people; the workbench keeps whatever JSON value is given.
DESCRIPTION = {"description": "A note for people, kept as written."}


def config_schema() -> dict:
    env_ref = {
        "type": "object",
        "properties": {"$env": {"type": "string", "minLength": 1}},
        "required": ["$env"],
        "additionalProperties": False,
        "description": "A secret read from this environment variable; secrets never live in mapping files.",
    }
    path = {
        "type": "string",
        "pattern": r"^(body|headers)([.\[].*)?$",
        "description": "Dot path rooted at body or headers, e.g. body.email",
    }
    region = {
        "type": "string",
        "pattern": "^[A-Z]{2}$",
        "description": 'With "as": "e164": the country of numbers written without a country code',
    }
    value_spec = {
        "oneOf": [
            path,
            {
                "type": "object",
                "required": ["path"],
                "additionalProperties": False,
                "properties": {
                    "path": path,
                    "as": {"enum": list(COERCIONS)},
                    "default": {},
                    "region": region,
                },
            },
            {
                "type": "object",
                "required": ["value"],
                "additionalProperties": False,
                "properties": {"value": {}},
            },
            {
                "type": "object",
                "required": ["template"],
                "additionalProperties": False,
                "properties": {"template": {"type": "string", "pattern": r"\{\{.+\}\}"}},
            },
            {
                "type": "object",
                "required": ["first"],
                "additionalProperties": False,
                "properties": {
                    "first": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/value_spec"}}
                },
            },
        ]
    }
    condition = {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": path,
            "as": {"enum": list(COERCIONS)},
            **{op: {} for op in OPERATORS},
            "in": {"type": "array"},
            "matches": {"type": "string"},
            "exists": {"type": "boolean"},
        },
        "additionalProperties": False,
        "minProperties": 2,
        "oneOf": [{"required": [op]} for op in OPERATORS],
    }
    mapping_variants = []
    for action in EXECUTION_ORDER:
        spec = ACTION_TYPES[action]
        mapping_variants.append(
            {
                "if": {"properties": {"action": {"const": action}}},
                "then": {
                    "properties": {
                        "params": {
                            "type": "object",
                            "properties": {p: {"$ref": "#/$defs/value_spec"} for p in spec.params},
                            "required": sorted(spec.required),
                            "additionalProperties": False,
                        }
                    }
                },
            }
        )
    mapping = {
        "type": "object",
        "required": ["event", "action", "params"],
        "additionalProperties": False,
        "properties": {
            "event": {"type": "string", "pattern": r"\S"},
            "action": {"enum": list(EXECUTION_ORDER)},
            "description": DESCRIPTION,
            "active": {"type": "boolean"},
            "when": {
                "oneOf": [
                    {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                    {"$ref": "#/$defs/condition"},
                ]
            },
            "params": {"type": "object"},
        },
        "allOf": mapping_variants,
    }
    sink = {
        "oneOf": [
            {"enum": ["local", "dry-run", None]},
            {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {
                    "type": {"enum": ["local", "dry-run", "knock"]},
                    "api_key": {"description": "Read by the knock sink only."},
                    "base_url": {"type": "string", "pattern": "^https?://"},
                    "timeout": {"type": "number", "minimum": 0},
                    "max_retries": {"type": "number", "minimum": 0},
                    "rate_per_second": {"type": "number", "minimum": 0},
                    "rate_limit_scale": {"type": "number", "exclusiveMinimum": 0},
                },
                "if": {"properties": {"type": {"const": "knock"}}},
                "then": {"required": ["api_key"], "properties": {"api_key": {"$ref": "#/$defs/env_ref"}}},
            },
        ]
    }
    environment = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "description": DESCRIPTION,
            "signing_secrets": {
                "oneOf": [
                    {"type": "array", "items": {"$ref": "#/$defs/env_ref"}},
                    {"$ref": "#/$defs/env_ref"},
                ]
            },
            "idempotency": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["key"],
                        "additionalProperties": False,
                        "properties": {
                            "key": {
                                "oneOf": [
                                    path,
                                    {
                                        "type": "object",
                                        "required": ["hash"],
                                        "additionalProperties": False,
                                        "properties": {"hash": path},
                                    },
                                ]
                            },
                            "window_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 8760},
                        },
                    },
                ]
            },
            "sink": sink,
            "mappings": {"type": "array", "items": {"$ref": "#/$defs/mapping"}},
        },
    }
    column = {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "required": ["column"],
                "additionalProperties": False,
                "properties": {
                    "column": {"type": "string"},
                    "as": {"enum": list(COERCIONS)},
                    "region": region,
                },
            },
            {
                "type": "object",
                "required": ["value"],
                "additionalProperties": False,
                "properties": {"value": {}},
            },
        ]
    }
    knock = {
        "type": "object",
        "additionalProperties": False,
        "description": "What a Knock source holds that the config has no counterpart for (kept by "
        "`workbench knock pull`, sent back by `workbench knock push`).",
        "properties": {
            "source_key": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "description": {"type": ["string", "null"]},
            "custom_image_url": {"type": ["string", "null"]},
            "environments": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "settings": {
                            "type": "object",
                            "not": {
                                "anyOf": [
                                    {"required": ["event_type_path"]},
                                    {"required": ["idempotency_key_path"]},
                                ]
                            },
                        },
                        "mappings": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["event_type", "action_type"],
                                "properties": {
                                    "event_type": {"type": "string"},
                                    "action_type": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Clay source mapping config",
        "type": "object",
        "required": ["source", "environments"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"description": "Where an editor finds this schema; not read by the workbench."},
            "description": DESCRIPTION,
            "source": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
            "event_type_path": path,
            "environments": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                "additionalProperties": {"$ref": "#/$defs/environment"},
            },
            "clay": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"body_template": {"type": ["object", "null"], "additionalProperties": column}},
            },
            "knock": knock,
        },
        "$defs": {
            "env_ref": env_ref,
            "value_spec": value_spec,
            "condition": condition,
            "mapping": mapping,
            "environment": environment,
        },
    }
