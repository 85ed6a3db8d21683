import json

from click.testing import CliRunner

from workbench.cli import main

from .conftest import DEFAULT_CONFIG, SAMPLE_BODY


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def test_rehearse_prints_a_processed_outcome(lead_body):
    result = run("rehearse", DEFAULT_CONFIG, "--env", "development", SAMPLE_BODY)
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert outcome["id"].startswith("evt_") and outcome["status"] == "processed"
    (action,) = outcome["actions"]
    assert action["action"] == "users_identify" and action["status"] == "success"
    assert action["payload"]["id"] == "jane@acme.com" and action["payload"]["properties"] == lead_body


def test_rehearse_reads_headers_and_stdin(tmp_path, raw_config):
    raw_config["environments"]["development"]["mappings"] = [
        {"event": "e", "action": "tenants_set", "params": {"id": "headers.x-clay-table-id"}}
    ]
    config = tmp_path / "c.json"
    config.write_text(json.dumps(raw_config))
    result = run(
        "rehearse",
        config,
        "--env",
        "development",
        "-",
        "--header",
        "X-Clay-Table-Id: t_42",
        input='{"event": "e"}',
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["actions"][0]["payload"] == {"id": "t_42"}


def test_rehearse_of_a_bad_body_still_runs(tmp_path):
    body = tmp_path / "b.json"
    body.write_text('{"event": "lead.enriched", "email": }')
    result = run("rehearse", DEFAULT_CONFIG, "--env", "development", body)
    assert result.exit_code == 0
    assert json.loads(result.output)["status"] == "invalid"


def test_rehearse_usage_and_config_errors_exit_2(tmp_path):
    assert run("rehearse", DEFAULT_CONFIG, SAMPLE_BODY).exit_code == 2  # no --env
    missing_env = run("rehearse", DEFAULT_CONFIG, "--env", "staging", SAMPLE_BODY)
    assert missing_env.exit_code == 2 and "no environment `staging`" in missing_env.output
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"source": "clay", "environments": {"dev": {"mappings": [{"event": "e", "action": "nope"}]}}}'
    )
    result = run("rehearse", bad, "--env", "dev", SAMPLE_BODY)
    assert result.exit_code == 2 and "environments.dev.mappings[0].action" in result.output
    assert run("rehearse", DEFAULT_CONFIG, "--env", "development", tmp_path / "none.json").exit_code == 2
    assert (
        run("rehearse", DEFAULT_CONFIG, "--env", "development", SAMPLE_BODY, "--header", "nocolon").exit_code
        == 2
    )


def test_schema_prints_json_schema():
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"].endswith("2020-12/schema") and "environments" in schema["properties"]
