import json

import jsonschema
import pytest

from workbench.config import dump_config, load_config, parse_config, save_config
from workbench.errors import ConfigError
from workbench.schema import config_schema

from .conftest import DEFAULT_CONFIG


def test_default_config_loads_with_knocks_defaults():
    config = load_config(DEFAULT_CONFIG)
    assert config.source == "clay"
    assert set(config.environments) == {"development", "production"}
    dev = config.environment("development")
    (identify,) = dev.mappings_for("lead.enriched")
    assert identify.action == "users_identify"
    assert {name: spec.to_json() for name, spec in identify.params.items()} == {
        "id": "body.email",
        "name": "body.full_name",
        "email": "body.email",
        "phone_number": "body.phone_number",
        "avatar": "body.avatar_url",
        "properties": "body",
    }
    assert dev.idempotency is None
    assert dev.sink.type == "local"
    prod = config.environment("production")
    assert prod.sink.type == "knock" and prod.sink.api_key.name == "KNOCK_API_KEY"
    assert {m.event for m in dev.mappings} == {
        "lead.enriched",
        "account.enriched",
        "lead.high_intent",
        "contact.updated",
    }


def test_default_config_matches_the_published_schema():
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(DEFAULT_CONFIG.read_text()), schema)


def test_secrets_resolve_from_the_given_environ():
    env = load_config(DEFAULT_CONFIG).environment("development")
    assert env.secrets({"CLAY_SIGNING_SECRET_DEVELOPMENT": "s3cret"}) == ("s3cret",)
    assert env.secrets({}) == ()
    assert env.missing_secrets({}) == ["CLAY_SIGNING_SECRET_DEVELOPMENT"]


def test_unknown_environment_names_the_known_ones():
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG).environment("staging")
    assert "development, production" in str(info.value)


def test_every_problem_is_reported_at_once_with_its_location(raw_config):
    dev = raw_config["environments"]["development"]
    dev["signing_secrets"] = ["literal-secret"]
    dev["mappings"][0]["params"]["id"] = "email"
    dev["mappings"][0]["params"]["nickname"] = "body.nick"
    dev["mappings"][1]["action"] = "objects_sett"
    dev["mappings"][2]["when"] = [{"path": "body.icp_score", "gte": 80, "lte": 90}]
    del dev["mappings"][3]["params"]["id"]
    dev["sink"] = "locall"
    dev["idempotency"] = {"key": "row_id", "window_hours": -1}
    raw_config["environments"]["production"]["sink"]["api_key"] = "sk_live_123"
    with pytest.raises(ConfigError) as info:
        parse_config(raw_config, "clay.json")
    problems = dict(info.value.problems)
    text = str(info.value)
    assert "literal-secret" not in text and "sk_live_123" not in text
    expected = {
        "environments.development.signing_secrets[0]": '{"$env": "VARIABLE_NAME"}',
        "environments.development.mappings[0].params.id": "did you mean `body.email`",
        "environments.development.mappings[0].params.nickname": "users_identify has no param `nickname`",
        "environments.development.mappings[1].action": "did you mean `objects_set`",
        "environments.development.mappings[2].when[0]": "exactly one operator",
        "environments.development.mappings[3].params.id": "users_identify requires `id`",
        "environments.development.sink": "did you mean `local`",
        "environments.development.idempotency.key": "did you mean `body.row_id`",
        "environments.production.sink.api_key": "must not be written into the mapping file",
    }
    for location, fragment in expected.items():
        assert location in problems, (location, problems)
        assert fragment in problems[location], (location, problems[location])
    assert text.startswith("clay.json: 9 problems")


@pytest.mark.parametrize(
    "mutate, location",
    [
        (lambda c: c.pop("source"), "source"),
        (lambda c: c.update(source="my source"), "source"),
        (lambda c: c.update(environments={}), "environments"),
        (lambda c: c.update(event_type_path="event"), "event_type_path"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c.update(clay={"body_template": {"email": 5}}), "clay.body_template.email"),
        (lambda c: c["environments"]["development"].update(mappings={}), "environments.development.mappings"),
        (
            lambda c: c["environments"]["development"]["mappings"][0].update(active="yes"),
            "environments.development.mappings[0].active",
        ),
        (
            lambda c: c["environments"]["development"]["mappings"][0].update(event=""),
            "environments.development.mappings[0].event",
        ),
        (
            lambda c: c["environments"]["development"].update(sink={"type": "knock"}),
            "environments.development.sink.api_key",
        ),
        (
            lambda c: c["environments"]["development"].update(
                sink={"type": "knock", "api_key": {"$env": "K"}, "base_url": "ftp://x"}
            ),
            "environments.development.sink.base_url",
        ),
        (
            lambda c: c["environments"]["development"].update(idempotency={"key": {"hash": 1}}),
            "environments.development.idempotency.key",
        ),
    ],
)
def test_single_problems(raw_config, mutate, location):
    mutate(raw_config)
    with pytest.raises(ConfigError) as info:
        parse_config(raw_config)
    assert location in dict(info.value.problems), info.value.problems


def test_not_an_object():
    with pytest.raises(ConfigError):
        parse_config([1, 2])


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "clay",\n "environments": }')
    with pytest.raises(ConfigError, match="line 2, column 18"):
        load_config(bad)


def test_a_key_given_twice_is_an_error_naming_where(tmp_path):
    """JSON keeps the last of a repeated key: a second `development` environment or a second
    `id` param would silently replace the first."""
    raw = json.loads(DEFAULT_CONFIG.read_text())
    text = json.dumps(raw)
    development = json.dumps(raw["environments"]["development"])
    doubled = text.replace('"production":', f'"development": {development}, "production":', 1)
    head, tail = doubled.rsplit('"params": {"id":', 1)  # production's last mapping
    doubled = f'{head}"params": {{"id": "body.work_email", "id":{tail}'
    path = tmp_path / "doubled.json"
    path.write_text(doubled)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        (
            f"environments.production.mappings[{len(raw['environments']['production']['mappings']) - 1}].params.id",
            "`id` is given twice in one object; JSON keeps only the last, so merge them",
        ),
        (
            "environments.development",
            "`development` is given twice in one object; JSON keeps only the last, so merge them",
        ),
    ]


def test_idempotency_config(raw_config):
    raw_config["environments"]["development"]["idempotency"] = {"key": {"hash": "body"}, "window_hours": 2}
    idem = parse_config(raw_config).environment("development").idempotency
    assert idem.hashed and idem.path.text == "body" and idem.window.total_seconds() == 7200


def test_mappings_are_ordered_by_execution_order(raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {
            "event": "e",
            "action": "workflows_cancel",
            "params": {"key": "body.k", "cancellation_key": "body.c"},
        },
        {"event": "e", "action": "workflows_trigger", "params": {"key": "body.k", "recipients": "body.r"}},
        {"event": "e", "action": "objects_set", "params": {"collection": "body.c", "id": "body.i"}},
        {"event": "e", "action": "users_identify", "params": {"id": "body.email"}},
        {"event": "e", "action": "objects_set", "params": {"collection": "body.c2", "id": "body.i"}},
    ]
    env = parse_config(raw_config).environment("development")
    ordered = env.mappings_for("e")
    assert [(m.action, m.index) for m in ordered] == [
        ("users_identify", 3),
        ("objects_set", 2),
        ("objects_set", 4),
        ("workflows_trigger", 1),
        ("workflows_cancel", 0),
    ]


def test_dump_is_stable_and_round_trips(raw_config, tmp_path):
    shuffled = dict(reversed(list(raw_config.items())))
    assert dump_config(shuffled) == dump_config(raw_config)
    path = tmp_path / "out" / "clay.json"
    config = save_config(raw_config, path)
    assert config.source == "clay"
    assert load_config(path).raw == json.loads(path.read_text())
    first_mapping = json.loads(path.read_text())["environments"]["development"]["mappings"][0]
    assert list(first_mapping) == ["event", "action", "description", "params"]


def test_save_refuses_an_invalid_config_and_writes_nothing(raw_config, tmp_path):
    raw_config["source"] = ""
    with pytest.raises(ConfigError):
        save_config(raw_config, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
