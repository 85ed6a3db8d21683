"""Round trips through the fake management API, over generated Knock-compatible configs and sources.

pull → push of an unchanged source sends the very body Knock holds (and no difference); push →
pull gives back the same config.
"""

from __future__ import annotations

import itertools

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.knock_mapi import SERVICE_TOKEN, FakeKnockMapi, load_operations
from workbench.actions import ACTION_TYPES
from workbench.deploy import (
    ManagementClient,
    environment_blockers,
    plan_push,
    pull,
    push,
    request_from_source,
    to_knock,
)
from workbench.deploy.translate import KNOCK_ACTIONS, is_option
from workbench.errors import NotKnockCompatible
from workbench.headers import is_credential

ENV = "development"
PUT = next(op for op in load_operations() if op.method == "PUT" and op.template == "/v1/sources/{key}")
KEYS = itertools.count(1)
ROUND_TRIPS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(lambda s: s[0] != "_")
paths = st.one_of(
    st.just("body"),
    st.lists(names, min_size=1, max_size=3).map(lambda keys: "body." + ".".join(keys)),
    # A header a mapping can read: never one the receiver drops as a credential (x-key, x-auth…).
    names.map(lambda key: f"headers.x-{key}").filter(lambda path: not is_credential(path[len("headers.") :])),
)
options = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
events = st.sampled_from(["lead.enriched", "account.enriched", "lead.high_intent", "contact.updated"])


@st.composite
def knock_parameters(draw, action):
    """Knock's action_parameters for `action`: options as text, the rest as paths (or null)."""
    spec = ACTION_TYPES[action]
    out = {}
    for name in spec.params:
        if name not in spec.required and not draw(st.booleans()):
            continue
        if is_option(action, name):
            out[name] = draw(options)
        elif name in spec.required:
            out[name] = draw(paths)
        else:
            out[name] = draw(st.one_of(paths, st.none()))
    return out


@st.composite
def config_mappings(draw):
    action = draw(st.sampled_from(KNOCK_ACTIONS))
    parameters = draw(knock_parameters(action))
    mapping = {"event": draw(events), "action": action}
    if draw(st.booleans()):
        mapping["active"] = False
    mapping["params"] = {
        k: ({"value": v} if v is None or is_option(action, k) else v) for k, v in parameters.items()
    }
    return mapping


@st.composite
def configs(draw):
    """Configs in the form a pull writes (what Knock's sources run, nothing more)."""
    key = draw(st.one_of(st.none(), paths))
    return {
        "source": "clay",
        "event_type_path": draw(paths),
        "environments": {
            ENV: {
                "signing_secrets": [{"$env": "CLAY_SIGNING_SECRET_DEVELOPMENT"}],
                "idempotency": None if key is None else {"key": key, "window_hours": 24},
                "sink": "local",
                "mappings": draw(st.lists(config_mappings(), max_size=6)),
            }
        },
    }


@st.composite
def knock_mappings(draw):
    action = draw(st.sampled_from(KNOCK_ACTIONS))
    mapping = {
        "event_type": draw(events),
        "action_type": action,
        "action_parameters": draw(knock_parameters(action)),
        "active": draw(st.booleans()),
        "is_deleted": False,
    }
    odd = draw(st.sampled_from(["none", "none", "preprocess", "deleted_trigger"]))
    if odd == "preprocess":  # read from a preprocess script's output: the workbench keeps it aside
        mapping["action_parameters"]["properties" if action != "users_delete" else "id"] = "preprocess.row"
    elif odd == "deleted_trigger":
        mapping.update(
            action_type="workflows_trigger",
            action_parameters={"key": draw(options), "recipients": draw(paths)},
            is_deleted=True,
        )
    return mapping


@st.composite
def knock_sources(draw):
    """PUT bodies as Knock's dashboard could have set a source, extras included."""
    settings_ = {"event_type_path": draw(paths), "idempotency_key_path": draw(st.one_of(st.none(), paths))}
    if draw(st.booleans()):
        settings_["enforce_verification"] = draw(st.booleans())
    if draw(st.booleans()):
        settings_["timestamp_path"] = draw(st.one_of(st.none(), paths))
    if draw(st.booleans()):
        settings_["preprocess_script"] = {
            "language": "javascript",
            "source": "function main(ctx) { return ctx; }",
        }
    source = {"name": draw(st.sampled_from(["Clay", "Clay leads", "clay"]))}
    if draw(st.booleans()):
        source["description"] = "Enriched rows from Clay"
    source["environment_settings"] = {
        ENV: {"settings": settings_, "mappings": draw(st.lists(knock_mappings(), max_size=6))}
    }
    return {"source": source}


@pytest.fixture(scope="module")
def knock():
    fake = FakeKnockMapi()
    client = ManagementClient(token=SERVICE_TOKEN, base_url=fake.url)
    yield fake, client
    client.close()
    violations = fake.finish()
    assert not violations, "\n".join(violations)


@ROUND_TRIPS
@given(config=configs())
def test_push_then_pull_gives_back_the_config(knock, config):
    fake, client = knock
    config["source"] = f"clay-{next(KEYS)}"
    push(client, plan_push(client, config, ENV))
    assert pull(client, config["source"], ENV, base=config).config == config
    assert (
        pull(client, config["source"], ENV).config["environments"][ENV]["mappings"]
        == (config["environments"][ENV]["mappings"])
    )


@ROUND_TRIPS
@given(body=knock_sources())
def test_pull_then_push_of_an_unchanged_source_sends_the_same_body(knock, body):
    fake, client = knock
    key = f"clay-{next(KEYS)}"
    fake.put_source(key, ENV, body)
    held = request_from_source(client.get_source(key, ENV), ENV)
    config = pull(client, key, ENV).config
    plan = plan_push(client, config, ENV)
    assert plan.body == held
    assert plan.unchanged


@st.composite
def any_mappings(draw):
    """Mappings from the config's whole vocabulary, Knock-compatible or not."""
    mapping = draw(config_mappings())
    spec = ACTION_TYPES[mapping["action"]]
    twist = draw(st.sampled_from(["none", "when", "template", "first", "as", "literal", "cancel", "bracket"]))
    name = draw(st.sampled_from(spec.params))
    if twist == "when":
        mapping["when"] = [{"path": "body.icp_score", "gte": 80}]
    elif twist == "template":
        mapping["params"][name] = {"template": "acct-{{body.domain}}"}
    elif twist == "first":
        mapping["params"][name] = {"first": ["body.a", "body.b"]}
    elif twist == "as":
        mapping["params"][name] = {"path": "body.a", "as": "number"}
    elif twist == "literal":
        mapping["params"][name] = {"value": ["sales-team"]}
    elif twist == "cancel":
        mapping.update(
            action="workflows_cancel", params={"key": {"value": "w"}, "cancellation_key": "body.id"}
        )
    elif twist == "bracket":
        mapping["params"][name] = 'body["Full Name"]'
    return mapping


@settings(max_examples=60, deadline=None)
@given(config=configs(), extra=st.lists(any_mappings(), max_size=3))
def test_a_config_is_refused_or_becomes_a_body_the_spec_accepts(config, extra):
    config["environments"][ENV]["mappings"] += extra
    blockers = environment_blockers(config, ENV)
    try:
        body = to_knock(config, ENV)
    except NotKnockCompatible as refused:
        assert refused.problems == blockers and blockers
        return
    assert blockers == []
    jsonschema.Draft202012Validator(PUT.request_schema).validate(body)
