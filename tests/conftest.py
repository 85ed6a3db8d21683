"""Fixtures shared across the suite. Area-specific fixtures live in each folder's conftest."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.fakes.knock import fake_knock  # noqa: F401  (the fake Knock API, for every test folder)
from tests.support.browser import browser  # noqa: F401  (Debian's Chromium, for the page tests)
from tests.support.postgres import PostgresServer, PostgresUnavailable

# CI explores the same examples on every run, so a red build always points at the change that made it;
# local runs keep Hypothesis' random exploration to find new cases.
# No per-example deadline anywhere: the suite runs on a busy shared machine, where an example's time
# says nothing about the code (speed is measured under bench/, never by tests).
settings.register_profile("local", deadline=None)
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "local")


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the session (skipped outside CI when it cannot start)."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database()


def pytest_terminal_summary(terminalreporter):
    """The contract line: how many requests the fake Knock checked against Knock's API description."""
    from tests.fakes.knock_spec import API_SPEC, CONTRACT

    if not CONTRACT.checked:
        return
    terminalreporter.write_line(
        f"Knock contract: {CONTRACT.checked} requests checked against {API_SPEC.name}, "
        f"{len(CONTRACT.refused)} refused by it; {CONTRACT.answers} of the fake's answers checked against it"
        + (
            f" ({CONTRACT.refused_elsewhere} more refused on purpose by tests of the fake)"
            if CONTRACT.refused_elsewhere
            else ""
        )
    )
    for refusal in CONTRACT.refused[:20]:
        terminalreporter.write_line(f"  refused: {refusal}")


def pytest_sessionfinish(session, exitstatus):
    """A request of the project's own that Knock's API description refuses fails the run."""
    from tests.fakes.knock_spec import CONTRACT

    if CONTRACT.refused and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request, tmp_path):
    """A real store, once on a SQLite file and once on a fresh PostgreSQL database."""
    from workbench.store import Store

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'workbench.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url)
    yield store
    store.close()
