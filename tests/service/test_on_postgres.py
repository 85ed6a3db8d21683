"""The service's concurrency and fault tests again, on PostgreSQL: the same code path."""

from __future__ import annotations

import pytest

from tests.service.test_receive import (  # noqa: F401 - collected here with the fixture below
    test_a_row_sent_again_after_a_failure_runs_only_what_did_not_succeed,
    test_concurrent_duplicates_in_threads_execute_once,
    test_concurrent_duplicates_in_two_processes_execute_once,
    test_crash_while_processing_keeps_the_event_for_a_replay,
    test_duplicate_within_the_window_runs_nothing,
)
from tests.service.test_retries import (  # noqa: F401
    test_knock_failing_then_recovering_ends_with_one_run_per_event,
    test_queued_event_is_a_duplicate_until_it_gives_up,
    test_terminal_refusal_fails_until_replayed_and_the_replay_reruns_only_the_failure,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def store_url(postgres_url):
    return postgres_url
