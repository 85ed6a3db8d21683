"""Hostile requests at the ingestion URL: credential headers, short bodies, huge event names,
and what every answer and every file says about itself."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
import requests
from click.testing import CliRunner

from tests.receiver.conftest import admin, auth, lead, receiver_config, write_config
from workbench.cli import main

from .conftest import raw_request

URL = "/sources/clay/development"


def _posted(server, body, headers=None) -> requests.Response:
    return server.post(URL, body, {"Content-Type": "application/json", **auth(), **(headers or {})})


def _logged(server) -> int:
    return sum(server.get(f"{URL}/status").json()["counts"].values())


def test_credential_headers_are_neither_stored_nor_shown(server):
    sent = {
        "Cookie": "session=c00k1e",
        "Proxy-Authorization": "Basic cHJveHk6cGFzcw==",
        "X-Api-Key": "k3y-value",
        "X-Auth-Token": "t0ken-value",
        "X-Upstream-Secret": "s3cret-value",
        "X-Clay-Table-Id": "t_42",
        "Idempotency-Key": "row-7",
    }
    answer = _posted(server, lead(email=f"{uuid.uuid4().hex}@acme.com"), sent)
    assert answer.status_code == 200, answer.text
    entry = server.get(f"{URL}/logs/{answer.json()['id']}").json()
    kept = entry["headers"]
    assert kept["x-clay-table-id"] == "t_42" and kept["idempotency-key"] == "row-7"
    for name in ("authorization", "cookie", "proxy-authorization", "x-api-key", "x-auth-token"):
        assert name not in kept, kept
    page = server.get(URL, headers=admin()).text
    for value in ("c00k1e", "cHJveHk6cGFzcw", "k3y-value", "t0ken-value", "s3cret-value", "Bearer"):
        assert value not in json.dumps(entry) and value not in page


@pytest.mark.parametrize("header", ["cookie", "x-api-key", "X-Session-Token"])
def test_a_config_reading_a_dropped_header_is_refused(tmp_path, header):
    raw = receiver_config()
    raw["environments"]["development"]["mappings"][0]["params"]["name"] = f"headers.{header}"
    config = write_config(tmp_path / "clay.json", raw)
    result = CliRunner().invoke(main, ["serve", str(config), "--store", f"sqlite:///{tmp_path / 'e.sqlite'}"])
    assert result.exit_code == 2, result.output
    assert "environments.development.mappings[0].params.name" in result.output
    assert f"`{header.lower()}` is never stored or shown to mappings" in result.output


def test_a_body_shorter_than_its_content_length_is_refused_and_not_stored(server):
    before = _logged(server)
    body = json.dumps(lead(email="short@acme.com")).encode()
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth()['Authorization'][7:]}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n"
    )
    answer = raw_request(server.url, head.encode() + body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer[:500]
    reply = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert reply["status"] == "incomplete"
    assert f"after {len(body)} of the {len(body) + 100} bytes" in reply["error"]
    assert _logged(server) == before


def test_every_answer_says_nosniff(server):
    answers = [
        requests.get(server.url + "/healthz", timeout=30),
        _posted(server, lead(email="n@acme.com")),
        _posted(server, b"{not json"),
        server.post(URL, lead(), {"Authorization": "Bearer wrong"}),
        server.post("/sources/nope/development", lead()),
        requests.put(server.url + URL, timeout=30),
        server.get(f"{URL}/logs"),
        server.get(f"{URL}/logs", headers={}),
        server.get(URL),
    ]
    codes = [a.status_code for a in answers]
    assert codes == [200, 200, 400, 401, 404, 405, 200, 401, 200]
    assert all(a.headers.get("X-Content-Type-Options") == "nosniff" for a in answers), codes


def test_a_long_event_name_is_cut_in_the_answer_and_kept_whole_in_the_log(server):
    name = "e" * 1_000_000
    answer = _posted(server, {"event": name, "email": "long@acme.com"})
    assert answer.status_code == 200 and answer.json()["status"] == "no_mapping"
    assert len(answer.content) < 2000
    assert answer.json()["event"].endswith("… (1000000 characters)")
    entry = server.get(f"{URL}/logs/{answer.json()['id']}").json()
    assert entry["event"] == name


def test_the_files_the_receiver_makes_are_its_owners_alone(server):
    assert _posted(server, lead(email="files@acme.com")).status_code == 200
    server.get(f"{URL}/logs")  # waits until the row is written
    made = [p for p in server.base.rglob("*") if p.is_file() and p.name not in ("clay.json", "serve.log")]
    names = {p.name for p in made}
    assert {"events.sqlite", "events.sqlite-wal", "access.log"} <= names, names
    assert any(p.parent.name.endswith("receiver-journal") for p in made), names
    loose = {
        p.name: oct(p.stat().st_mode & 0o777)
        for p in made
        if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    }
    assert not loose, loose
