"""Sink fixtures: a real store (SQLite file, and PostgreSQL) for the local sink."""

from __future__ import annotations

import pytest


@pytest.fixture
def store(any_store):
    return any_store
