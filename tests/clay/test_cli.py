import json

import pytest
from click.testing import CliRunner

from workbench.cli import main

from .conftest import CONFIG, SAMPLES


def test_load_prints_a_profile_and_a_json_line(tmp_path):
    db = tmp_path / "w.duckdb"
    runner = CliRunner()
    result = runner.invoke(main, ["load", str(SAMPLES / "clay_leads_sample.csv"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert json.loads(lines[-1]) == {"table": "clay_leads_sample", "rows": 200, "columns": 34}
    assert any(line.startswith("Work Email") and "email" in line for line in lines)
    again = runner.invoke(
        main, ["load", str(SAMPLES / "clay_leads_sample.csv"), "--db", str(db), "--table", "t"]
    )
    assert json.loads(again.output.strip().splitlines()[-1])["table"] == "t"


def test_load_refuses_a_non_csv_file_with_the_line(tmp_path):
    result = CliRunner().invoke(
        main, ["load", str(SAMPLES / "not_a_clay_export.csv"), "--db", str(tmp_path / "w")]
    )
    assert result.exit_code == 2
    assert "line 2" in result.output and "not a Clay CSV export" in result.output


def test_clay_setup_prints_what_to_paste():
    result = CliRunner().invoke(
        main, ["clay-setup", str(CONFIG), "--env", "production", "--url", "https://hooks.example.com/"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Method: POST" in out
    assert "URL: https://hooks.example.com/sources/clay/production" in out
    assert "Authorization: Bearer <your signing secret>" in out and "CLAY_SIGNING_SECRET_PRODUCTION" in out
    assert '"email": "/Work Email"' in out and '"event": "lead.enriched"' in out
    assert "{{" not in out
    body = out[out.index("{") : out.rindex("}") + 1]
    assert json.loads(body)["icp_score"] == "/ICP Score"


def test_clay_setup_without_a_template_uses_the_export_columns(tmp_path):
    config = json.loads(CONFIG.read_text())
    del config["clay"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(
        main,
        [
            "clay-setup",
            str(path),
            "--env",
            "development",
            "--url",
            "http://127.0.0.1:8000",
            "--export",
            str(SAMPLES / "clay_duplicate_headers.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert body == {
        "event": "lead.enriched",
        "full_name": "/Full Name",
        "email": "/Email",
        "email_2": "/Email (2)",
        "zip_code": "/Zip Code",
        "phone_number": "/Phone Number",
    }


def test_clay_setup_unknown_environment():
    result = CliRunner().invoke(main, ["clay-setup", str(CONFIG), "--env", "staging", "--url", "http://x"])
    assert result.exit_code == 2 and "no environment `staging`" in result.output


@pytest.mark.parametrize("url", ["hooks.example.com", "ftp://hooks.example.com", "", "https://"])
def test_clay_setup_refuses_a_url_clay_cannot_post_to(url):
    result = CliRunner().invoke(main, ["clay-setup", str(CONFIG), "--env", "production", "--url", url])
    assert result.exit_code == 2, result.output
    assert "the receiver URL must be an address Clay can reach, starting with https://" in result.output
    assert "URL:" not in result.output
