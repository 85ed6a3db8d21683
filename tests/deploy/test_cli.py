"""pull → edit → push --dry-run → push → pull through `workbench knock`, against the fake management API."""

import json

import pytest
from click.testing import CliRunner

from tests.deploy.conftest import knock_ready
from tests.fakes.knock_mapi import SERVICE_TOKEN
from workbench import load_config
from workbench.cli import main


@pytest.fixture
def knock(fake_mapi):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(
            main, ["knock", *args, "--base-url", fake_mapi.url], env={"KNOCK_SERVICE_TOKEN": SERVICE_TOKEN}
        )

    return run


def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_pull_edit_dry_run_push_pull(knock, fake_mapi, default_config, tmp_path):
    fake_mapi.set_source(
        "clay",
        "development",
        {"event_type_path": "body.event", "idempotency_key_path": None},
        [
            {
                "event_type": "lead.enriched",
                "action_type": "users_identify",
                "action_parameters": {"id": "body.email", "properties": "body"},
            }
        ],
    )
    out = tmp_path / "mappings" / "clay.json"
    pulled = knock("pull", "clay", "--env", "development", "--out", str(out))
    assert pulled.exit_code == 0, pulled.output
    config = load_config(out).raw
    assert config["environments"]["development"]["mappings"] == [
        {
            "event": "lead.enriched",
            "action": "users_identify",
            "params": {"id": "body.email", "properties": "body"},
        }
    ]
    assert config["knock"] == {"name": "Clay"}  # the source's display name; nothing else lacks a counterpart

    config["environments"]["development"]["mappings"][0]["params"]["name"] = "body.full_name"
    config["environments"]["development"]["mappings"].append(
        knock_ready(default_config)["environments"]["development"]["mappings"][2]
    )
    _write(out, config)
    before = len(fake_mapi.requests("PUT"))
    dry = knock("push", str(out), "--env", "development", "--dry-run")
    assert dry.exit_code == 0, dry.output
    body = json.loads(dry.stdout)
    assert body["source"]["environment_settings"]["development"]["mappings"][0]["action_parameters"][
        "name"
    ] == ("body.full_name")
    assert '~ lead.enriched → users_identify: name (none) → "body.full_name"' in dry.stderr
    assert "+ lead.high_intent → workflows_trigger" in dry.stderr
    assert len(fake_mapi.requests("PUT")) == before  # a dry run sends nothing

    pushed = knock("push", str(out), "--env", "development")
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout.strip().splitlines()[-1]) == {
        "source": "clay",
        "environment": "development",
        "pushed": True,
        "mappings": 2,
    }
    again = knock("pull", "clay", "--env", "development", "--out", str(out))
    assert again.exit_code == 0, again.output
    assert load_config(out).raw == config
    unchanged = knock("push", str(out), "--env", "development", "--dry-run")
    assert "No difference" in unchanged.stderr


def test_a_config_knock_cannot_run_is_refused_before_anything_is_sent(
    knock, fake_mapi, default_config, tmp_path
):
    path = _write(tmp_path / "clay.json", default_config)
    result = knock("push", str(path), "--env", "development")
    assert result.exit_code == 2
    assert "environments.development.mappings[2].when" in result.stderr
    assert "nothing was sent" in result.stderr
    assert fake_mapi.requests() == []  # not even a read of Knock's source


def test_pull_prints_the_config_and_reports_what_it_kept(knock, fake_mapi):
    script = {"language": "javascript", "source": "function main(ctx) { return {verified: true}; }"}
    fake_mapi.set_source(
        "clay-leads",
        "development",
        {"event_type_path": "body.event", "preprocess_script": script},
        [],
        name="Clay leads",
    )
    result = knock("pull", "clay-leads", "--env", "development")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["source"] == "clay-leads"
    assert config["knock"] == {
        "name": "Clay leads",
        "environments": {"development": {"settings": {"preprocess_script": script}}},
    }
    assert "kept: setting `preprocess_script`" in result.stderr


def test_pull_of_a_missing_source_says_what_to_check(knock):
    result = knock("pull", "nope", "--env", "development")
    assert result.exit_code == 2
    assert "no source `nope`" in result.stderr and "dashboard" in result.stderr


def test_removing_a_workflow_trigger_marks_it_deleted(knock, fake_mapi, default_config, tmp_path):
    data = knock_ready(default_config)
    path = _write(tmp_path / "clay.json", data)
    assert knock("push", str(path), "--env", "development").exit_code == 0
    del data["environments"]["development"]["mappings"][2]
    _write(path, data)
    dry = knock("push", str(path), "--env", "development", "--dry-run")
    assert "~ lead.high_intent → workflows_trigger: is_deleted false → true" in dry.stderr
    assert knock("push", str(path), "--env", "development").exit_code == 0
    pulled = knock("pull", "clay", "--env", "development", "--out", str(path))
    assert "marked deleted in Knock" in pulled.stderr
    assert load_config(path).raw["knock"]["environments"]["development"]["mappings"][0]["is_deleted"] is True


def test_rehearse_shows_knock_beside_the_workbench(knock, fake_mapi, default_config, tmp_path):
    data = knock_ready(default_config)
    path = _write(tmp_path / "clay.json", data)
    assert knock("push", str(path), "--env", "development").exit_code == 0
    body = _write(
        tmp_path / "body.json", {"event": "lead.enriched", "email": "jane@acme.com", "full_name": "Jane Doe"}
    )
    result = knock("rehearse", str(path), str(body), "--env", "development")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["knock"]["status"] == "ok"
    assert [a["action_type"] for a in shown["knock"]["actions"]] == ["users_identify"]
    assert shown["workbench"]["actions"][0]["payload"]["id"] == "jane@acme.com"
    assert shown["differences"] == []
    assert "agree" in result.stderr

    data["environments"]["development"]["mappings"][0]["params"]["name"] = "body.email"
    _write(path, data)  # the workbench's copy now differs from what Knock runs
    differs = knock("rehearse", str(path), str(body), "--env", "development")
    assert json.loads(differs.stdout)["differences"] == [
        'action 0 (users_identify): `name` is "Jane Doe" in Knock, "jane@acme.com" in the workbench'
    ]


def test_rehearse_refuses_production(knock, fake_mapi, default_config, tmp_path):
    path = _write(tmp_path / "clay.json", default_config)
    body = _write(tmp_path / "body.json", {"event": "lead.enriched"})
    result = knock("rehearse", str(path), str(body), "--env", "production")
    assert result.exit_code == 2 and "does not rehearse in production" in result.stderr
    assert fake_mapi.requests() == []


def test_rehearse_leaves_out_what_the_workbench_skipped(knock, fake_mapi, default_config, tmp_path):
    data = knock_ready(default_config)
    inactive = {
        "event": "lead.enriched",
        "action": "users_delete",
        "active": False,
        "params": {"id": "body.email"},
    }
    data["environments"]["development"]["mappings"].append(inactive)
    path = _write(tmp_path / "clay.json", data)
    assert knock("push", str(path), "--env", "development").exit_code == 0
    body = _write(tmp_path / "body.json", {"event": "lead.enriched", "email": "jane@acme.com"})
    shown = json.loads(knock("rehearse", str(path), str(body), "--env", "development").stdout)
    assert [a["action_type"] for a in shown["knock"]["actions"]] == ["users_identify"]
    assert [a["status"] for a in shown["workbench"]["actions"]] == ["success", "skipped"]
    assert shown["differences"] == []
