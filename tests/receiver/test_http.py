"""The ingestion contract, row by row of DESIGN's status table, through Flask's test client
and through `workbench serve` (gunicorn, two workers) on loopback."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from .conftest import ADMIN_TOKEN, ENVIRON, NEXT_SECRET, SECRET, admin, auth, build_app, lead, store_url_for


class ClientTransport:
    def __init__(self, client):
        self.client = client

    def post(self, path, body, headers):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        r = self.client.post(path, data=data, headers=headers, content_type="application/json")
        return r.status_code, r.get_json(silent=True), dict(r.headers)

    def get(self, path, headers=None):
        r = self.client.get(path, headers=admin() if headers is None else headers)
        return r.status_code, r.get_json(silent=True), dict(r.headers)


class ServedTransport:
    def __init__(self, served):
        self.served = served

    def post(self, path, body, headers):
        r = self.served.post(path, body, {"Content-Type": "application/json", **headers})
        return r.status_code, _json(r), dict(r.headers)

    def get(self, path, headers=None):
        r = self.served.get(path, headers=admin() if headers is None else headers)
        return r.status_code, _json(r), dict(r.headers)


def _json(response):
    try:
        return response.json()
    except ValueError:
        return None


POSTGRES = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(
    params=[
        "flask",
        pytest.param("flask-postgres", marks=POSTGRES),
        pytest.param("gunicorn", marks=pytest.mark.slow),
        pytest.param("gunicorn-postgres", marks=POSTGRES),
    ]
)
def http(request):
    server, _, store = request.param.partition("-")
    if server == "flask":
        app = build_app(request.getfixturevalue("config_path"), store_url_for(store or "sqlite", request))
        transport = ClientTransport(app.test_client())
        transport.files = [request.getfixturevalue("tmp_path")]
        return transport
    served = request.getfixturevalue("served_postgres" if store else "served")
    transport = ServedTransport(served)
    transport.files = [served.config_path.parent]  # its database files and its server log
    return transport


DEV = "/sources/clay/development"


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@acme.com"


def logged(http, event_id):
    code, entry, _ = http.get(f"{DEV}/logs/{event_id}")
    assert code == 200, entry
    return entry


# (case, url, headers, body, http code, status)
STATUS_TABLE = [
    ("processed", DEV, auth(), lambda: lead(email=unique_email()), 200, "processed"),
    ("rotated secret", DEV, auth(NEXT_SECRET), lambda: lead(email=unique_email()), 200, "processed"),
    ("bearer scheme any case", DEV, {"Authorization": f"bEaReR {SECRET}"}, lambda: lead(), 200, "processed"),
    (
        "no_mapping",
        DEV,
        auth(),
        lambda: {"event": "lead.archived", "email": unique_email()},
        200,
        "no_mapping",
    ),
    ("queued", "/sources/clay/flaky", auth(), lambda: lead(email=unique_email()), 202, "queued"),
    ("invalid json", DEV, auth(), lambda: b'{"event": "lead.enriched", "email": }', 400, "invalid"),
    ("non-object", DEV, auth(), lambda: b'[{"event": "lead.enriched"}]', 400, "invalid"),
    ("non-UTF-8", DEV, auth(), lambda: b'{"event": "lead.enriched", "full_name": "Ren\xe9"}', 400, "invalid"),
    ("no event type", DEV, auth(), lambda: {"email": unique_email()}, 400, "invalid"),
    ("required missing", DEV, auth(), lambda: lead(email=""), 422, "failed"),
]


@pytest.mark.parametrize(
    "url,headers,make_body,code,status",
    [row[1:] for row in STATUS_TABLE],
    ids=[row[0] for row in STATUS_TABLE],
)
def test_status_table(http, url, headers, make_body, code, status):
    got, body, response_headers = http.post(url, make_body(), headers)
    assert (got, body["status"]) == (code, status), body
    assert response_headers["Content-Type"].startswith("application/json")
    assert body["id"].startswith("evt_")
    entry = http.get(f"{url}/logs/{body['id']}")[1]
    assert entry["status"] == status
    assert SECRET not in json.dumps(entry) and NEXT_SECRET not in json.dumps(entry)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", None],
)
def test_any_content_type(http, content_type):
    headers = {**auth(), **({"Content-Type": content_type} if content_type else {})}
    if isinstance(http, ClientTransport):
        r = http.client.post(DEV, data=json.dumps(lead(email=unique_email())).encode(), headers=headers)
        code, body = r.status_code, r.get_json()
    else:
        import requests

        r = requests.post(
            http.served.url + DEV, data=json.dumps(lead()).encode(), headers=headers, timeout=30
        )
        code, body = r.status_code, r.json()
    assert (code, body["status"]) == (200, "processed"), body


def test_invalid_bodies_say_why(http):
    _, body, _ = http.post(DEV, b'{"event": "lead.enriched", "email": }', auth())
    assert (
        "not valid JSON" in body["error"] and "column" in body["error"] and "double quotes" in body["error"]
    )
    _, body, _ = http.post(DEV, b"[1, 2]", auth())
    assert "must be a JSON object" in body["error"] and "array" in body["error"]
    _, body, _ = http.post(DEV, b'{"event": "lead.enriched", "n": "\xff"}', auth())
    assert "not UTF-8" in body["error"]
    _, body, _ = http.post(DEV, {"email": "a@b.co"}, auth())
    assert "no event type" in body["error"] and "body.event" in body["error"]
    raw = b'{"event": "lead.enriched", "email": "a@b.co", "note": "cut \\ud83d"}'
    code, body, _ = http.post(DEV, raw, auth())
    assert (code, body["status"]) == (400, "invalid") and "\\ud83d without its pair" in body["error"]
    assert logged(http, body["id"])["body"] == raw.decode()


def test_invalid_body_is_logged_as_received(http):
    raw = b'{"event": "lead.enriched", "full_name": "Ren\xe9", "email": "x@y.co"}'
    _, body, _ = http.post(DEV, raw, auth())
    entry = logged(http, body["id"])
    assert entry["body"] == raw.decode("utf-8", "replace")


@pytest.mark.parametrize("secret", [None, "wrong-secret", f"{SECRET}x"], ids=["missing", "wrong", "longer"])
def test_rejected_requests_are_not_stored(http, secret):
    marker = uuid.uuid4().hex
    before = http.get(f"{DEV}/logs?limit=1000")[1]["events"]
    headers = {} if secret is None else auth(secret)
    code, body, _ = http.post(DEV, lead(email=f"{marker}@acme.com"), headers)
    assert (code, body["status"]) == (401, "rejected")
    assert "Authorization" in body["error"] and "id" not in body
    assert SECRET not in json.dumps(body) and (secret is None or secret not in json.dumps(body))
    after = http.get(f"{DEV}/logs?limit=1000")[1]["events"]
    assert len(after) == len(before)


def test_control_characters_inside_strings_are_tolerated(http):
    email = unique_email()
    raw = (
        '{"event": "lead.enriched", "email": "'
        + email
        + '", "full_name": "Jane\tDoe", "job_title": "VP\nSales\x01"}'
    ).encode()
    code, body, _ = http.post(DEV, raw, auth())
    assert (code, body["status"]) == (200, "processed"), body
    assert body["actions"][0]["payload"]["name"] == "Jane\tDoe"
    assert logged(http, body["id"])["body"] == raw.decode()


def test_required_field_missing_names_parameter_and_path(http):
    body = lead()
    del body["email"]
    code, reply, _ = http.post(DEV, body, auth())
    assert code == 422 and reply["status"] == "failed"
    (action,) = reply["actions"]
    assert action["status"] == "failed"
    assert "param `id`" in action["error"] and "body.email" in action["error"]


def test_conditions_skip(http):
    code, reply, _ = http.post(DEV, lead(event="lead.high_intent", icp_score="41"), auth())
    assert (code, reply["status"]) == (200, "processed")
    (action,) = reply["actions"]
    assert action["action"] == "workflows_trigger" and action["status"] == "skipped"
    code, reply, _ = http.post(
        DEV, lead(event="lead.high_intent", icp_score="93", email=unique_email()), auth()
    )
    assert (code, reply["status"], reply["actions"][0]["status"]) == (200, "processed", "success")


def test_header_paths(http):
    table = f"t_{uuid.uuid4().hex[:10]}"
    headers = {**auth(), "X-Clay-Table-Id": table}
    code, reply, _ = http.post(DEV, {"event": "table.row", "table_name": "Leads Q3"}, headers)
    assert (code, reply["status"]) == (200, "processed"), reply
    assert reply["actions"][0]["payload"] == {"id": table, "name": "Leads Q3"}
    entry = logged(http, reply["id"])
    assert entry["headers"]["x-clay-table-id"] == table


def test_idempotent_duplicates_sequential(http):
    row = {**lead(email=unique_email()), "row_id": uuid.uuid4().hex}
    url = "/sources/clay/dedupe"
    first = http.post(url, row, auth())
    second = http.post(url, row, auth())
    assert (first[0], first[1]["status"]) == (200, "processed")
    assert (second[0], second[1]["status"]) == (200, "idempotent")
    assert second[1]["actions"] == [] and second[1]["id"] != first[1]["id"]
    other = http.post(url, {**row, "row_id": uuid.uuid4().hex}, auth())
    assert other[1]["status"] == "processed"


def test_a_row_sent_again_after_a_failure_runs_only_what_failed(http):
    url = "/sources/clay/dedupe"
    row = {"event": "lead.qualified", "row_id": uuid.uuid4().hex}
    code, first, _ = http.post(url, row, auth())
    assert (code, first["status"]) == (422, "failed"), first
    statuses = {a["action"]: a["status"] for a in first["actions"]}
    assert statuses == {"workflows_trigger": "success", "users_identify": "failed"}
    code, again, _ = http.post(url, {**row, "email": unique_email()}, auth())
    assert (code, again["status"]) == (200, "processed"), again
    runs = [[a["result"] for a in r["actions"] if a["action"] == "workflows_trigger"] for r in (first, again)]
    assert runs[0] == runs[1]  # the trigger's run is carried over (a new run would have a new id)
    code, entry, _ = http.get(f"{url}/logs/{again['id']}")
    assert (code, [a["status"] for a in entry["actions"]]) == (200, ["success", "success"])
    code, third, _ = http.post(url, {**row, "email": unique_email()}, auth())
    assert (code, third["status"], third["actions"]) == (200, "idempotent", [])


@pytest.mark.slow
def test_idempotent_duplicates_concurrent_across_workers(served):
    row = {**lead(email=unique_email()), "row_id": uuid.uuid4().hex}
    barrier = Barrier(8)

    def send(_):
        barrier.wait()
        r = served.post("/sources/clay/dedupe", row, auth())
        return r.status_code, r.json()["status"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    statuses = sorted(s for _, s in results)
    assert statuses.count("processed") == 1, results
    assert statuses.count("idempotent") == 7, results
    assert all(code == 200 for code, _ in results)


def test_unknown_source_or_environment_is_404(http):
    for url in ("/sources/hubspot/development", "/sources/clay/staging"):
        code, body, _ = http.post(url, lead(), auth())
        assert code == 404 and body["status"] == "not_found", body
        assert "staging" in body["error"] or "hubspot" in body["error"]
    code, body, _ = http.post("/nowhere", lead(), auth())
    assert code == 404 and "/sources/" in body["error"]


def test_trailing_slash_is_the_same_url(http):
    code, body, _ = http.post(DEV + "/", lead(email=unique_email()), auth())
    assert (code, body["status"]) == (200, "processed")


def test_other_methods_are_405_json(http):
    if isinstance(http, ClientTransport):
        r = http.client.put(DEV, data=b"{}", headers=auth())
        code, body = r.status_code, r.get_json()
    else:
        import requests

        r = requests.put(http.served.url + DEV, data=b"{}", headers=auth(), timeout=30)
        code, body = r.status_code, r.json()
    assert code == 405 and body["status"] == "method_not_allowed" and "POST" in body["error"]


@pytest.mark.slow
def test_six_mib_body_is_413_json(served):
    filler = "x" * (6 * 1024 * 1024)
    r = served.post(DEV, {"event": "lead.enriched", "email": "big@acme.com", "notes": filler}, auth())
    assert r.status_code == 413
    assert r.json()["status"] == "too_large" and "5 MiB" in r.json()["error"]
    assert served.get("/healthz").ok


def _chunks(data: bytes, size: int = 1 << 16):
    """A body that requests sends chunked (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_chunked_bodies_are_limited(base_url: str) -> None:
    """Over the limit: 413, and nothing logged (Werkzeug alone logs the first 5 MiB, as invalid
    JSON). Under it: processed."""
    import requests

    def get(path):
        return requests.get(base_url + DEV + path, headers=admin(), timeout=30).json()

    headers = {**auth(), "Content-Type": "application/json"}
    big_email = unique_email()
    big = json.dumps({"event": "lead.enriched", "email": big_email, "notes": "x" * (6 << 20)}).encode()
    r = requests.post(base_url + DEV, data=_chunks(big), headers=headers, timeout=60)
    assert r.status_code == 413 and r.json()["status"] == "too_large", r.text[:300]
    invalid = get("/logs?status=invalid&limit=1000")["events"]
    assert not any(big_email in get(f"/logs/{e['id']}")["body"] for e in invalid)

    small = json.dumps(lead(email=unique_email())).encode()
    r = requests.post(base_url + DEV, data=_chunks(small, 100), headers=headers, timeout=60)
    assert (r.status_code, r.json()["status"]) == (200, "processed")
    assert get(f"/logs/{r.json()['id']}")["body"] == small.decode()


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_413_under_gunicorn(served):
    assert_chunked_bodies_are_limited(served.url)


def test_a_chunked_body_over_the_limit_is_413_in_a_notebooks_receiver(config_path, tmp_path):
    from workbench.receiver import run_in_background

    handle = run_in_background(
        config_paths=[config_path],
        store_url=f"sqlite:///{tmp_path / 'events.sqlite'}",
        ENVIRON=ENVIRON,
        ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        assert_chunked_bodies_are_limited(handle.url)
    finally:
        handle.stop()


def test_too_large_under_test_client(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    r = client.post(DEV, data=json.dumps(lead(notes="x" * 2048)), headers=auth())
    assert r.status_code == 413 and "1024 bytes" in r.get_json()["error"]


def test_authorization_is_never_stored(http):
    code, reply, _ = http.post(DEV, lead(email=unique_email()), {**auth(), "X-Trace": "t-1"})
    assert code == 200
    entry = logged(http, reply["id"])
    text = json.dumps(entry)
    assert SECRET not in text and ADMIN_TOKEN not in text
    assert entry["headers"].get("x-trace") == "t-1"
    assert entry["headers"].get("authorization") in (None, "[redacted]")
    # Nor anywhere on disk: database, its write-ahead log, the server's log.
    for folder in http.files:
        for path in folder.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), f"the signing secret is in {path.name}"
