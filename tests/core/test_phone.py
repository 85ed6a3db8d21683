"""`"as": "e164"`: phone numbers in every format Clay holds become E.164, as Knock's SMS channels expect."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench import Engine, SourceEvent, parse_config
from workbench.errors import CoercionError, ConfigError
from workbench.schema import config_schema
from workbench.sinks import DryRunSink
from workbench.specs import coerce, compile_spec


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+1 415 555 0123", None, "+14155550123"),
        ("+1 (415) 555-0123", "FR", "+14155550123"),  # a country code wins over the region
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0199", "US", "+14155550199"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        (14155550123, "US", "+14155550123"),
    ],
)
def test_numbers_become_e164(value, region, expected):
    assert coerce(value, "e164", region) == expected


@pytest.mark.parametrize(
    ("value", "region", "fragment"),
    [
        ("415 555 0123", None, 'no country code: start it with + or set "region"'),
        ("n/a", "US", "does not look like a phone number"),
        ("+1 415 55", None, "not a valid phone number"),
        ("12345", "US", "not a valid phone number in US"),
        (True, "US", "cannot read true as a phone number"),
        ({"n": 1}, "US", "as a phone number"),
    ],
)
def test_what_is_not_a_number_says_why(value, region, fragment):
    with pytest.raises(CoercionError, match="phone number") as info:
        coerce(value, "e164", region)
    assert fragment in str(info.value)


@given(st.text(max_size=30), st.sampled_from([None, "US", "GB", "FR", "DE"]))
def test_e164_never_raises_anything_but_its_own_error(text, region):
    try:
        out = coerce(text, "e164", region)
    except CoercionError:
        return
    assert out.startswith("+") and out[1:].isdigit()


def test_region_goes_with_e164_and_must_be_known():
    spec = compile_spec({"path": "body.phone", "as": "e164", "region": "US"}, [], "p")
    assert spec.to_json() == {"path": "body.phone", "as": "e164", "region": "US"}
    for raw, fragment in [
        ({"path": "body.phone", "as": "string", "region": "US"}, '`region` goes with `"as": "e164"`'),
        ({"path": "body.phone", "as": "e164", "region": "us"}, 'unknown region "us"'),
        ({"path": "body.phone", "as": "e164", "region": "XX"}, "two-letter country code"),
    ]:
        problems = []
        assert compile_spec(raw, problems, "params.phone_number") is None
        assert problems and problems[0][0] == "params.phone_number.region" and fragment in problems[0][1]


def config(phone_spec):
    return {
        "source": "clay",
        "environments": {
            "development": {
                "signing_secrets": [{"$env": "S"}],
                "sink": "dry-run",
                "mappings": [
                    {
                        "event": "lead.enriched",
                        "action": "users_identify",
                        "params": {"id": "body.email", "phone_number": phone_spec},
                    }
                ],
            }
        },
    }


def test_each_row_reports_its_invalid_number_like_other_coercion_errors():
    engine = Engine(
        parse_config(config({"path": "body.phone", "as": "e164", "region": "US"})),
        "development",
        DryRunSink(),
    )
    rows = [("a@x.com", "(415) 555-0123"), ("b@x.com", "call me"), ("c@x.com", "+33 1 42 68 53 00")]
    results = []
    for email, phone in rows:
        body = json.dumps({"event": "lead.enriched", "email": email, "phone": phone})
        (action,) = engine.process(SourceEvent(body, origin="backfill")).to_dict()["actions"]
        results.append(action)
    assert [a["status"] for a in results] == ["success", "failed", "success"]
    assert results[0]["payload"]["phone_number"] == "+14155550123"
    assert results[2]["payload"]["phone_number"] == "+33142685300"
    assert "param `phone_number`" in results[1]["error"] and "path `body.phone`" in results[1]["error"]
    assert '"call me" as a phone number' in results[1]["error"]


def test_a_bad_region_is_refused_at_load_with_its_location():
    with pytest.raises(ConfigError) as info:
        parse_config(config({"path": "body.phone", "as": "e164", "region": "USA"}))
    assert "environments.development.mappings[0].params.phone_number.region" in str(info.value)


def test_the_schema_knows_e164_and_region():
    import jsonschema

    schema = config_schema()
    jsonschema.validate(config({"path": "body.phone", "as": "e164", "region": "GB"}), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config({"path": "body.phone", "as": "e164", "region": "gb"}), schema)


def test_a_body_template_column_can_be_read_as_e164_too():
    from workbench.clay import body_builder, row_to_body

    raw = config("body.phone")
    raw["clay"] = {"body_template": {"phone": {"column": "Phone", "as": "e164", "region": "GB"}}}
    template = parse_config(raw).body_template
    assert row_to_body({"Phone": "020 7946 0958"}, template)["phone"] == "+442079460958"
    build = body_builder(["Phone"], template)
    assert build(["020 7946 0958"])["phone"] == "+442079460958"
    with pytest.raises(CoercionError, match="column `Phone`"):
        build(["call me"])
    raw["clay"]["body_template"]["phone"]["region"] = "Britain"
    with pytest.raises(ConfigError, match=r"clay\.body_template\.phone\.region"):
        parse_config(raw)
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, config_schema())
