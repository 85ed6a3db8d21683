"""Loading a config and the JSON Schema of `workbench schema` accept and refuse the same configs.

Configs are drawn from pieces that are mostly valid and sometimes wrong in one way, at every
level. Path syntax (`body..x`) is left out: a schema cannot spell it, and test_paths covers it."""

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.actions import ACTION_TYPES, EXECUTION_ORDER
from workbench.config import parse_config
from workbench.errors import ConfigError
from workbench.schema import config_schema

VALIDATOR = jsonschema.Draft202012Validator(config_schema())
ABSENT = object()  # a key left out


def mostly(valid, wrong):
    """`valid` nine times in ten, else `wrong`."""
    return st.integers(0, 9).flatmap(lambda i: valid if i else wrong)


def objects(required: dict, optional: dict):
    """Dicts with these keys; a required one is sometimes left out, an optional one often."""
    keys = {**{k: mostly(v, st.just(ABSENT)) for k, v in required.items()}}
    keys.update({k: st.one_of(st.just(ABSENT), v) for k, v in optional.items()})
    keys["unknown_key"] = mostly(st.just(ABSENT), st.just(1))
    return st.fixed_dictionaries(keys).map(lambda d: {k: v for k, v in d.items() if v is not ABSENT})


wrong = st.sampled_from([None, True, 0, -1, 2.5, "", "x", [], {}])
anything = st.one_of(wrong, st.just("text"))
name = mostly(st.sampled_from(["clay", "dev", "a.b-c_1"]), st.sampled_from(["", "-x", "has space", 7]))
path = mostly(st.sampled_from(["body.email", "body", "headers.x-row", "body.items[0].id"]), wrong)
coercion = mostly(st.sampled_from(["string", "number", "integer", "boolean", "json", "list"]), wrong)
text = mostly(st.just("words"), wrong)

value_spec = st.recursive(
    st.one_of(
        path,
        objects({"path": path}, {"as": coercion, "default": anything}),
        objects({"value": anything}, {}),
        objects({"template": mostly(st.just("Hi {{body.name}}"), st.sampled_from(["no braces", 1]))}, {}),
    ),
    lambda inner: objects({"first": mostly(st.lists(inner, min_size=1, max_size=2), wrong)}, {}),
    max_leaves=3,
)
operators = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "matches", "exists"])
operand = {"in": mostly(st.lists(anything, max_size=2), wrong), "matches": mostly(st.just("^a"), wrong)}
operand["exists"] = mostly(st.booleans(), wrong)
condition = st.tuples(operators, st.lists(operators, max_size=1)).flatmap(
    lambda ops: objects(
        {"path": path, **{op: operand.get(op, anything) for op in {ops[0], *ops[1]}}}, {"as": coercion}
    )
)


@st.composite
def mapping(draw):
    action = draw(mostly(st.sampled_from(EXECUTION_ORDER), st.sampled_from(["users_identfy", 1, None])))
    spec = ACTION_TYPES.get(action) if isinstance(action, str) else None
    known = list(spec.params) if spec else ["id"]
    extra = draw(st.lists(st.sampled_from(known), unique=True, max_size=2))
    wanted = [*sorted(spec.required), *extra] if spec else extra
    params = {p: draw(value_spec) for p in wanted if draw(mostly(st.just(True), st.just(False)))}
    if draw(mostly(st.just(False), st.just(True))):
        params["no_such_param"] = "body.x"
    return draw(
        objects(
            {
                "event": mostly(st.just("lead.enriched"), st.sampled_from(["", "  ", 5])),
                "action": st.just(action),
                "params": mostly(st.just(params), wrong),
            },
            {
                "when": mostly(st.lists(condition, max_size=2), st.one_of(condition, wrong)),
                "active": mostly(st.booleans(), wrong),
                "description": text,
            },
        )
    )


env_ref = mostly(
    st.just({"$env": "SECRET"}),
    st.sampled_from([{"$env": ""}, {"$env": 1}, "inline-secret", {"$env": "A", "b": 1}, None]),
)
number = mostly(st.sampled_from([0, 1, 2.5]), st.sampled_from([-1, True, "1", None]))
sink = st.one_of(
    mostly(st.sampled_from(["local", "dry-run"]), st.sampled_from(["knock", "kafka", None, 1])),
    objects(
        {"type": mostly(st.sampled_from(["knock", "local", "dry-run"]), st.just("kafka"))},
        {
            "api_key": env_ref,
            "base_url": mostly(st.just("https://api.knock.app"), st.sampled_from(["ftp://x", 1])),
            "timeout": number,
            "max_retries": number,
            "rate_per_second": number,
        },
    ),
)
idempotency = mostly(
    st.one_of(
        st.none(),
        objects(
            {"key": st.one_of(path, objects({"hash": path}, {}))},
            {
                "window_hours": mostly(
                    st.sampled_from([1, 24, 0.5, 8760]), st.sampled_from([0, -1, 9000, True, "24"])
                )
            },
        ),
    ),
    wrong,
)
environment = mostly(
    objects(
        {},
        {
            "signing_secrets": mostly(st.lists(env_ref, max_size=2), st.one_of(env_ref, wrong)),
            "idempotency": idempotency,
            "sink": sink,
            "mappings": mostly(st.lists(mapping(), max_size=2), wrong),
            "description": text,
        },
    ),
    wrong,
)
column = st.one_of(
    mostly(st.just("Work Email"), st.sampled_from([1, None])),
    objects({"column": mostly(st.just("ICP Score"), st.just(1))}, {"as": coercion}),
    objects({"value": anything}, {}),
)
configs = objects(
    {
        "source": name,
        "environments": mostly(
            st.dictionaries(name.filter(lambda n: isinstance(n, str)), environment, min_size=1, max_size=2),
            wrong,
        ),
    },
    {
        "event_type_path": path,
        "clay": mostly(
            objects(
                {},
                {
                    "body_template": mostly(
                        st.dictionaries(st.sampled_from(["email", "x"]), column, max_size=2), wrong
                    )
                },
            ),
            wrong,
        ),
        "description": text,
        "$schema": mostly(st.just("./schema.json"), st.just(1)),
    },
)


def loads(data) -> bool:
    try:
        parse_config(data)
    except ConfigError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_loading_and_the_schema_agree(data):
    assert loads(data) == VALIDATOR.is_valid(data), [e.message for e in VALIDATOR.iter_errors(data)][:3]
