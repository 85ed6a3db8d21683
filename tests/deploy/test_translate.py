import copy
import json

import jsonschema
import pytest

from tests.deploy.conftest import knock_ready
from tests.fakes.knock_mapi import load_operations
from workbench import parse_config
from workbench.deploy import environment_blockers, from_knock, request_from_source, to_knock
from workbench.errors import ConfigError, NotKnockCompatible
from workbench.schema import config_schema

PUT = next(op for op in load_operations() if op.method == "PUT" and op.template == "/v1/sources/{key}")


def test_the_shipped_config_lists_what_keeps_it_from_knock(default_config):
    blockers = dict(environment_blockers(default_config, "development"))
    assert sorted(blockers) == [
        "environments.development.mappings[1].params.id",
        "environments.development.mappings[2].params.recipients",
        "environments.development.mappings[2].when",
    ]
    assert (
        "first path" in blockers["environments.development.mappings[1].params.id"]
        or "one path" in (blockers["environments.development.mappings[1].params.id"])
    )
    assert (
        'clay.body_template: "recipients": {"value": ...}'
        in blockers["environments.development.mappings[2].params.recipients"]
    )
    with pytest.raises(NotKnockCompatible) as refused:
        to_knock(default_config, "development")
    assert "nothing was sent" in str(refused.value) and len(refused.value.problems) == 3


@pytest.mark.parametrize(
    ("change", "location", "says"),
    [
        (
            lambda m: m["params"].update(name={"template": "{{body.full_name}} at acme"}),
            "params.name",
            "no templates",
        ),
        (
            lambda m: m["params"].update(name={"path": "body.full_name", "as": "string"}),
            "params.name",
            "no coercion",
        ),
        (
            lambda m: m["params"].update(name={"path": "body.full_name", "default": "x"}),
            "params.name",
            "no coercion",
        ),
        (lambda m: m["params"].update(name={"first": ["body.a", "body.b"]}), "params.name", "one path"),
        (lambda m: m["params"].update(name={"value": "Jane"}), "params.name", "fixed value"),
        (lambda m: m["params"].update(name='body["Full Name"]'), "params.name", "plain dot-notation"),
        (lambda m: m["params"].update(name="body.names[*].first"), "params.name", "plain dot-notation"),
        (lambda m: m.update(when=[{"path": "body.icp_score", "gte": 80}]), "when", "no conditions"),
        (
            lambda m: m.update(
                action="workflows_cancel", params={"key": {"value": "w"}, "cancellation_key": "body.id"}
            ),
            "action",
            "dashboard",
        ),
        (
            lambda m: m.update(
                action="workflows_trigger", params={"key": "body.workflow", "recipients": "body.to"}
            ),
            "params.key",
            "the workflow key itself",
        ),
    ],
)
def test_each_thing_knock_lacks_is_refused_where_it_is(default_config, change, location, says):
    data = knock_ready(default_config)
    change(data["environments"]["development"]["mappings"][0])
    blockers = environment_blockers(data, "development")
    assert [loc for loc, _ in blockers] == [f"environments.development.mappings[0].{location}"]
    assert says in blockers[0][1]


@pytest.mark.parametrize(
    ("idempotency", "location", "says"),
    [
        ({"key": {"hash": "body"}}, "key", "not on a hash"),
        ({"key": "body.row_id", "window_hours": 48}, "window_hours", "24 hours"),
    ],
)
def test_idempotency_knock_lacks_is_refused(default_config, idempotency, location, says):
    data = knock_ready(default_config)
    data["environments"]["development"]["idempotency"] = idempotency
    blockers = environment_blockers(data, "development")
    assert [loc for loc, _ in blockers] == [f"environments.development.idempotency.{location}"]
    assert says in blockers[0][1]


def test_a_config_error_is_a_blocker_too(default_config):
    data = knock_ready(default_config)
    data["environments"]["development"]["mappings"][0]["params"]["nmae"] = "body.x"
    assert (
        environment_blockers(data, "development")[0][0] == "environments.development.mappings[0].params.nmae"
    )


def test_a_knock_ready_config_becomes_a_body_the_spec_accepts(default_config):
    data = knock_ready(default_config)
    data["environments"]["development"]["idempotency"] = {"key": "body.row_id", "window_hours": 24}
    body = to_knock(data, "development")
    jsonschema.Draft202012Validator(PUT.request_schema).validate(body)
    env = body["source"]["environment_settings"]["development"]
    assert env["settings"] == {"event_type_path": "body.event", "idempotency_key_path": "body.row_id"}
    assert env["mappings"][1] == {
        "event_type": "account.enriched",
        "action_type": "objects_set",
        "action_parameters": {
            "collection": "accounts",
            "id": "body.company_domain",
            "name": "body.company_name",
            "properties": "body",
        },
        "active": True,
        "is_deleted": False,
    }
    assert env["mappings"][2]["action_parameters"]["key"] == "new-high-intent-lead"


def _knock_source(**settings):
    return {
        "key": "clay",
        "name": "Clay",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "environment_settings": {
            "development": {
                "updated_at": "2026-01-01T00:00:00Z",
                "settings": {
                    "endpoint": "https://api.knock.app/integrations/receive/src_1",
                    "event_type_path": "body.event",
                    "idempotency_key_path": None,
                    **settings,
                },
                "mappings": [
                    {
                        "event_type": "lead.enriched",
                        "action_type": "users_identify",
                        "action_parameters": {"id": "body.email", "properties": "body", "locale": None},
                        "active": True,
                        "is_deleted": False,
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    },
                    {
                        "event_type": "lead.enriched",
                        "action_type": "users_identify",
                        "action_parameters": {"id": "preprocess.user_id"},
                        "active": False,
                        "is_deleted": False,
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    },
                ],
            }
        },
    }


def test_what_has_no_counterpart_is_kept_reported_and_sent_back():
    script = {"language": "javascript", "source": "function main(ctx) { return {verified: true}; }"}
    source = _knock_source(preprocess_script=script, enforce_verification=True)
    pulled = from_knock(source, "development")
    config = pulled.config
    assert config["knock"]["environments"]["development"]["settings"] == {
        "preprocess_script": script,
        "enforce_verification": True,
    }
    assert [m["params"] for m in config["environments"]["development"]["mappings"]] == [
        {"id": "body.email", "locale": {"value": None}, "properties": "body"}
    ]
    assert config["knock"]["environments"]["development"]["mappings"][0]["action_parameters"] == {
        "id": "preprocess.user_id"
    }
    assert any("preprocess_script" in line for line in pulled.kept)
    assert any("preprocess.user_id" in line for line in pulled.kept)
    parse_config(config)
    assert to_knock(config, "development", source) == request_from_source(source, "development")


def test_the_knock_section_is_checked_by_the_config_and_by_its_schema(default_config):
    data = copy.deepcopy(default_config)
    data["knock"] = {
        "source_key": "clay-prod",
        "environments": {"development": {"settings": {"timestamp_path": None}}},
    }
    parse_config(data)
    jsonschema.validate(data, config_schema())
    data["knock"]["environments"]["development"]["settings"]["event_type_path"] = "body.type"
    data["knock"]["colour"] = "blue"
    with pytest.raises(ConfigError) as bad:
        parse_config(data)
    assert [loc for loc, _ in bad.value.problems] == [
        "knock.colour",
        "knock.environments.development.settings.event_type_path",
    ]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, config_schema())
    assert json.loads(json.dumps(data))  # still plain JSON


def test_the_knock_part_keeps_only_what_knock_runs(default_config):
    from workbench.deploy import knock_part

    default_config["environments"]["development"]["idempotency"] = {"key": {"hash": "body"}}
    part = knock_part(default_config, "development")
    env = part["environments"]["development"]
    assert [m["event"] for m in env["mappings"]] == ["lead.enriched", "contact.updated"]
    assert env["idempotency"] is None
    assert environment_blockers(part, "development") == []
    assert (
        len(default_config["environments"]["development"]["mappings"]) == 4
    )  # the config itself is unchanged
