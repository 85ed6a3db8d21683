"""Store fixtures: a real SQLite file in tmp_path, and the same tests on PostgreSQL."""

from __future__ import annotations

import pytest

from workbench.store import Store


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'data' / 'workbench.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'workbench.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    store = Store(store_url)
    yield store
    store.close()
