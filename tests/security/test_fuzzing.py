"""Schemathesis against the live receiver: every operation of `/openapi.json`, with cases made
from the document, must answer without a 5xx and as the document says (status codes, content
types, bodies). The number of cases is bounded and reported in the run's summary."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.receiver.conftest import Served, receiver_config, write_config

# One value for the signing secret and the admin token, so every operation gets past its check
# and the cases reach the real work (and, for a random body, the event log).
TOKEN = "fuzz-token-8d1e"
CASES_PER_OPERATION = 20
# No 5xx, and every answer as the document says. (Whether a row the document allows is accepted
# depends on the mappings, which a document cannot say: a row may fail one with a 422.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    raw = receiver_config()
    raw["environments"] = {name: raw["environments"][name] for name in ("development", "dedupe")}
    config = write_config(base / "clay.json", raw)
    served = Served(
        config,
        f"sqlite:///{base / 'events.sqlite'}",
        log=base / "serve.log",
        admin_token=TOKEN,
        extra_env={"CLAY_SIGNING_SECRET_DEVELOPMENT": TOKEN},
    )
    yield served
    served.stop()


def test_the_document_names_the_served_sources_and_environments(server):
    document = requests.get(server.url + "/openapi.json", timeout=30).json()
    source, environment = document["paths"]["/sources/{source}/{environment}"]["post"]["parameters"]
    assert source["schema"]["enum"] == ["clay"]
    assert environment["schema"]["enum"] == ["dedupe", "development"]


def _fuzz(operation, label: str, url: str, session: requests.Session) -> None:
    """Up to CASES_PER_OPERATION cases of one operation, each checked by schemathesis."""
    headers = {"Authorization": f"Bearer {TOKEN}"}

    @settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case):
        TRIED[label] += 1
        case.call_and_validate(base_url=url, session=session, headers=headers, checks=CHECKS, timeout=60)

    check()


def test_every_operation_answers_as_documented(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", timeout=30)
    session = requests.Session()
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        TRIED[label] = 0
        try:
            _fuzz(operation, label, server.url, session)
        except Exception as exc:  # every operation is tried; the failures are listed together
            failures.append(f"{label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(TRIED) == 7 and all(TRIED.values()), TRIED


def summary() -> str | None:
    if not TRIED:
        return None
    return (
        f"schemathesis: {sum(TRIED.values())} cases over {len(TRIED)} operations of /openapi.json "
        f"(at most {CASES_PER_OPERATION} each): " + ", ".join(f"{k} {v}" for k, v in TRIED.items())
    )
