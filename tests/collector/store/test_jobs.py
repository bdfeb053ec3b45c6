"""Background jobs and retention: SKIP LOCKED job rows, pruning by ingest time, incidents kept."""

from __future__ import annotations

import threading

from otsentry.collector.store import NS_PER_DAY, Store, connect, job, write
from otsentry.collector.store import _schema as S
from sqlalchemy import insert

from tests.collector.store.helpers import A1, batch, delta, finding, status

T0 = 1_800_000_000 * 10**9


def _store_at(db_url: str, clock: list[int]) -> Store:
    return Store(db_url, clock=lambda: clock[0])


def test_prune_by_ingest_time(db_url: str) -> None:
    """Findings last changed more than N days ago go; an old capture replayed today stays."""
    clock = [T0]
    store = _store_at(db_url, clock)
    try:
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("old"), delta("10.0.0.9"),
                                                           status(T0)]))
        clock[0] = T0 + 40 * NS_PER_DAY
        # A capture from years ago, replayed now: its capture times are ancient.
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 4, [finding("replayed", first=10)]))
        pruned = store.prune(days=30)
        assert pruned.ran and pruned.findings == 1 and pruned.status == 1
        assert set(store.findings()) == {(A1.short, "replayed")}
        assert [e.body["finding_id"] for e in store.read_feed(0)] == ["replayed"]
        assert len(store.assets()) == 1  # the merged asset stays; its old history goes
    finally:
        store.close()


def test_incident_members_kept(db_url: str) -> None:
    """A finding that belongs to an incident is not pruned, and the incident stays."""
    clock = [T0]
    store = _store_at(db_url, clock)
    try:
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("a"), finding("b")]))
        (entry, _) = store.read_feed(0)
        with write(store.engine) as conn:
            iid = conn.execute(insert(S.incidents).returning(S.incidents.c.id), {
                "key": "k", "rule": "r", "scope": "s", "title": "t", "severity": 2, "worst": 2,
                "sites": ",plant1,", "site_count": 1, "source_ip": "", "techniques": "",
                "member_count": 1, "first_ns": T0, "last_ns": T0, "created_ns": T0,
                "updated_ns": T0}).scalar_one()
            conn.execute(insert(S.incident_members), {"incident": iid, "member_kind": "finding",
                                                      "ref": entry.ref, "site": "plant1",
                                                      "added_ns": T0})
        clock[0] = T0 + 400 * NS_PER_DAY
        assert store.prune(days=30).findings == 1
        assert set(store.findings()) == {(A1.short, entry.body["finding_id"])}
    finally:
        store.close()


def test_job_taken_once(db_url: str) -> None:
    """While one holder has a job, another gets None at once (PostgreSQL) or waits (SQLite)."""
    engine = connect(db_url)
    held, release, other = threading.Event(), threading.Event(), []

    def holder() -> None:
        with job(engine, "retention") as taken:
            assert taken is not None
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    if engine.dialect.name == "postgresql":
        with job(connect(db_url), "retention") as taken:
            other.append(taken)
        assert other == [None]
    release.set()
    t.join()
    with job(engine, "retention") as taken:
        assert taken is not None and taken[1] == 0
    engine.dispose()
