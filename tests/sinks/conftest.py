"""Sink fixtures: a real store (SQLite file, and PostgreSQL) for the local sink."""

from __future__ import annotations

import pytest

from workbench.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'workbench.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url)
    yield store
    store.close()
