"""The designer's Knock panel, driven headlessly against the fake management API: pull, edit, push."""

import copy
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fakes.knock_mapi import SERVICE_TOKEN, fake_mapi  # noqa: F401
from workbench import load_config
from workbench.cli import main
from workbench.deploy import ManagementClient
from workbench.designer import KnockPanel, MappingDesigner

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = {"language": "javascript", "source": "function main(ctx) { return {verified: true}; }"}
IDENTIFY = {
    "event_type": "lead.enriched",
    "action_type": "users_identify",
    "action_parameters": {"id": "body.email", "name": "body.full_name", "properties": "body"},
}


@pytest.fixture
def client(fake_mapi):  # noqa: F811
    fake_mapi.set_source(
        "clay", "development", {"event_type_path": "body.event", "preprocess_script": SCRIPT}, [IDENTIFY]
    )
    with ManagementClient(token=SERVICE_TOKEN, base_url=fake_mapi.url) as c:
        yield c


@pytest.fixture
def designer(con):
    return MappingDesigner(con, "leads", config=ROOT / "mappings" / "clay.json")


def test_the_indicator_lists_what_keeps_the_mapping_from_knock(designer, client):
    panel = KnockPanel(designer, client=client)
    designer.add_panel("Knock", panel.widget)
    assert not panel.compatible and panel.push_button.disabled
    assert [loc for loc, _ in panel.blockers] == [
        "environments.development.mappings[1].params.id",
        "environments.development.mappings[2].when",
        "environments.development.mappings[2].params.recipients",
    ]
    assert "Not Knock-compatible" in panel.indicator.value and "mappings[2].when" in panel.indicator.value
    # An edit in the designer updates the verdict: drop the two mappings Knock cannot run.
    designer.event_name.value = "lead.high_intent"
    designer.mapping_list.value = designer.mapping_list.options[0][1]
    designer.remove_mapping()
    assert len(panel.blockers) == 1
    designer.event_name.value = "account.enriched"
    designer.mapping_list.value = designer.mapping_list.options[0][1]
    designer.remove_mapping()
    assert panel.compatible and not panel.push_button.disabled
    assert panel.verdict().startswith("Knock-compatible")


def test_pull_edit_push_with_confirmation_then_pull(designer, client, fake_mapi):  # noqa: F811
    panel = KnockPanel(designer, client=client)
    panel.pull_button.click()
    assert panel.last_error is None, panel.message.value
    env = designer.config["environments"]["development"]
    assert env["mappings"] == [
        {
            "event": "lead.enriched",
            "action": "users_identify",
            "params": {"id": "body.email", "name": "body.full_name", "properties": "body"},
        }
    ]
    assert "production" in designer.config["environments"]  # the rest of the config is kept
    assert designer.config["knock"]["environments"]["development"]["settings"] == {
        "preprocess_script": SCRIPT
    }
    assert "preprocess_script" in panel.message.value and panel.compatible

    designer.event_name.value = "contact.deleted"
    designer.add_mapping("users_delete")
    assert panel.compatible
    puts = len(fake_mapi.requests("PUT"))
    panel.push_button.click()
    assert panel.last_error is None, panel.message.value
    assert panel.confirmation.layout.display == ""
    assert "+ contact.deleted → users_delete" in panel.difference.value
    assert len(fake_mapi.requests("PUT")) == puts  # nothing is sent before the confirmation

    panel.confirm_button.click()
    assert panel.last_error is None, panel.message.value
    assert len(fake_mapi.requests("PUT")) == puts + 1
    assert "Pushed" in panel.message.value and panel.confirmation.layout.display == "none"
    designed = copy.deepcopy(designer.config)
    panel.pull_button.click()
    assert designer.config == designed


def test_an_edit_cancels_a_pending_push_and_errors_are_shown(designer, client):
    panel = KnockPanel(designer, client=client)
    panel.pull_button.click()
    panel.push_button.click()
    assert panel.plan is not None and "no difference" in panel.difference.value
    designer.add_mapping("users_delete")
    assert panel.plan is None and panel.confirmation.layout.display == "none"
    panel.source_key.value = "nope"
    panel.pull_button.click()
    assert "no source `nope`" in panel.message.value and panel.last_error is not None


def test_no_token_is_said_in_the_panel(designer):
    panel = KnockPanel(designer, environ={})
    panel.pull_button.click()
    assert "KNOCK_SERVICE_TOKEN" in panel.message.value


def test_pull_in_the_designer_then_dry_run_push_and_pull_from_the_shell(
    designer,
    client,
    fake_mapi,  # noqa: F811
    tmp_path,
):
    panel = KnockPanel(designer, client=client)
    panel.pull_button.click()
    designer.event_name.value = "contact.deleted"
    designer.add_mapping("users_delete")
    saved = designer.save(tmp_path / "designed.json")
    shell = CliRunner()
    env = {"KNOCK_SERVICE_TOKEN": SERVICE_TOKEN}

    def knock(*args):
        return shell.invoke(
            main, ["knock", *args, "--env", "development", "--base-url", fake_mapi.url], env=env
        )

    dry = knock("push", str(saved), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert (
        "+ contact.deleted → users_delete" in dry.stderr and "= lead.enriched → users_identify" in dry.stderr
    )
    assert knock("push", str(saved)).exit_code == 0
    designed = load_config(saved).raw
    assert knock("pull", "clay", "--out", str(saved)).exit_code == 0
    assert load_config(saved).raw == designed
