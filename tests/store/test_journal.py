"""Journal files: entries read back as written, torn and damaged tails, segments and marks."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.store import journal
from workbench.store.journal import Entry, Journal

WHEN = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)


def entry(n: int, body: bytes | None = None) -> Entry:
    return Entry(
        f"evt_{n:026d}",
        WHEN,
        "clay",
        "development",
        {"content-type": "application/json", "x-clay-table-id": f"t{n}"},
        body if body is not None else b'{"event": "lead.enriched", "n": %d}' % n,
    )


entries = st.builds(
    Entry,
    st.text(min_size=1, max_size=40),
    st.datetimes(timezones=st.just(UTC)),
    st.text(max_size=20),
    st.text(max_size=20),
    st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=5),
    st.binary(max_size=2000),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, max_size=8))
def test_entries_read_back_as_written(tmp_path_factory, written):
    folder = tmp_path_factory.mktemp("journal")
    log = Journal(folder)
    for e in written:
        log.append(e)
    assert list(journal.read_entries(log.current.path)) == written
    log.close(remove=True)
    assert list(folder.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_an_entry_cut_short_ends_the_file_and_the_whole_ones_before_it_are_read(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("journal")
    log = Journal(folder)
    ends = [log.append(entry(n))[1] for n in range(4)]
    log.close(remove=False)
    path = next(folder.glob("*.log"))
    cut = data.draw(st.integers(min_value=0, max_value=ends[-1] - 1))
    os.truncate(path, cut)
    whole = sum(1 for end in ends if end <= cut)
    assert [e.event_id for e in journal.read_entries(path)] == [entry(n).event_id for n in range(whole)]


def test_a_damaged_entry_is_skipped_and_the_rest_are_read(tmp_path):
    log = Journal(tmp_path)
    _, first_end = log.append(entry(0))
    log.append(entry(1))
    log.append(entry(2))
    log.close(remove=False)
    path = next(tmp_path.glob("*.log"))
    data = bytearray(path.read_bytes())
    data[first_end + 12] ^= 0xFF  # a byte inside the second entry
    path.write_bytes(bytes(data))
    assert [e.event_id for e in journal.read_entries(path)] == [entry(0).event_id, entry(2).event_id]


def test_a_new_segment_starts_past_its_size_and_an_applied_old_one_is_removed(tmp_path):
    log = Journal(tmp_path, segment_bytes=200)
    placed = [log.append(entry(n, b"x" * 150)) for n in range(3)]
    segments = [segment for segment, _ in placed]
    assert len({id(s) for s in segments}) == 3 and len(list(tmp_path.glob("*.log"))) == 3
    first, first_end = placed[0]
    log.applied(first, first_end)  # all of an older segment: removed
    assert not first.path.exists() and not journal.mark_path(first.path).exists()
    second, second_end = placed[1]
    log.applied(second, second_end - 1)  # part of it: marked
    assert journal.read_mark(second.path) == (0, second_end - 1)
    current, end = placed[2]
    log.applied(current, end)  # all of the current one: emptied, a new generation
    assert current.path.stat().st_size == 0 and journal.read_mark(current.path) == (1, 0)
    log.close(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_a_live_journal_cannot_be_taken_and_a_closed_one_can(tmp_path):
    log = Journal(tmp_path)
    log.append(entry(0))
    path = log.current.path
    assert journal.try_lock(path) is None  # held by its owner
    log.close(remove=False)
    fd = journal.try_lock(path)
    assert fd is not None
    os.close(fd)
    journal.remove_journal(path)
    assert journal.try_lock(path) is None and journal.journal_files(tmp_path) == []


def test_waiting_for_others_hands_a_dead_one_over_and_ends_on_a_live_one_that_applied(tmp_path):
    live = Journal(tmp_path / "j")
    segment, end = live.append(entry(0))
    dead = Journal(tmp_path / "j")
    dead.append(entry(1))
    dead.close(remove=False)
    handed = []

    def take(path, fd):
        handed.append(path.name)
        os.close(fd)
        journal.remove_journal(path)

    # The live one has not applied its entry: waiting runs out.
    assert not journal.wait_for_others(tmp_path / "j", set(), 0.05, on_orphan=take)
    assert handed == [dead.current.path.name]
    live.applied(segment, end)
    assert journal.wait_for_others(tmp_path / "j", set(), 0.05, on_orphan=take)
    # Its own files are not waited for.
    live.append(entry(2))
    assert journal.wait_for_others(tmp_path / "j", live.paths, 0.05)
    live.close(remove=True)
