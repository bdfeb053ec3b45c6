"""The commit-ordered feed log: gapless cursors in commit order, filters, resume, concurrent writers."""

from __future__ import annotations

import threading
import time

from otsentry.collector.store import (
    FeedFilter,
    FeedRow,
    Ingest,
    Store,
    append_feed,
    connect,
    read,
    read_feed,
    write,
)
from otsentry.common.finding import Severity
from otsentry.common.pki import Identity

from tests.collector.store.helpers import A1, B1, batch, delta, finding, status


def _row(site: str = "plant1") -> FeedRow:
    return FeedRow("finding", 1, True, site, "", 2, "k", "", "")


class TestCommitOrder:
    def test_late_commit_is_not_skipped(self, db_url: str) -> None:
        """A writer that took cursors and commits late holds back later writers: no reader skips it."""
        engine = connect(db_url)
        first_open, done = threading.Event(), []
        release = threading.Event()

        def slow() -> None:
            with write(engine) as conn:
                append_feed(conn, [_row("slow")], 1)
                first_open.set()
                release.wait(10)

        def fast() -> None:
            with write(engine) as conn:
                done.append(append_feed(conn, [_row("fast")], 2))

        t1 = threading.Thread(target=slow)
        t1.start()
        first_open.wait(10)
        t2 = threading.Thread(target=fast)
        t2.start()
        time.sleep(0.3)
        with read(engine) as conn:
            assert read_feed(conn, 0) == [] and done == []
        release.set()
        t1.join()
        t2.join()
        with read(engine) as conn:
            assert [(e.cursor, e.site) for e in read_feed(conn, 0)] == [(1, "slow"), (2, "fast")]
        engine.dispose()

    def test_concurrent_writers_gapless(self, db_url: str) -> None:
        """Four writers (replicas on PostgreSQL) and a reader: every read is a gapless prefix."""
        # One process writes to SQLite (its writer thread is the only one); replicas each have theirs.
        ingests = [Ingest(connect(db_url), group_max=50)
                   for _ in range(4 if db_url.startswith("postgresql") else 1)]
        stop, seen, errors = threading.Event(), [], []

        def reader() -> None:
            engine, cursor = connect(db_url), 0
            while not stop.is_set() or cursor < _head(engine):
                with read(engine) as conn:
                    got = [e.cursor for e in read_feed(conn, cursor, 200, bodies=False)]
                if got and got != list(range(cursor + 1, cursor + 1 + len(got))):
                    errors.append((cursor, got[:5]))
                seen.extend(got)
                cursor = got[-1] if got else cursor
            engine.dispose()

        def writer(i: int) -> None:
            ident = Identity.agent(f"site{i % 2}", f"w{i}")
            for n in range(12):
                ingests[i % len(ingests)].commit_sync(ident, "s", batch(ident, 1, n * 5 + 1,
                                                          [finding(f"f{n}-{j}") for j in range(5)]))

        r = threading.Thread(target=reader)
        r.start()
        ws = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        stop.set()
        r.join()
        for ing in set(ingests):
            ing.close()
        assert errors == []
        assert seen == list(range(1, 241))


def _head(engine) -> int:  # type: ignore[no-untyped-def]
    from otsentry.collector.store import head
    with read(engine) as conn:
        return head(conn)


class TestRead:
    def test_filters_and_bodies(self, store: Store) -> None:
        """Site, severity, technique, detector and asset filters; bodies are the current rows."""
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [
            finding("a", kind="scan.hosts", severity=Severity.MEDIUM, techniques=("T0846",),
                    client="10.0.0.5"),
            finding("b", kind="policy.write-not-allowed", severity=Severity.HIGH,
                    techniques=("T0855", "T0836"), client="10.0.0.6"),
            delta("10.0.0.9"), status(1)]))
        store.ingest.commit_sync(B1, "s", batch(B1, 1, 1, [finding("a", 2, severity=Severity.LOW)]))

        def ids(f: FeedFilter) -> list[tuple[str, str]]:
            return [(e.kind, e.body.get("finding_id", "")) for e in store.read_feed(0, filters=f)]

        assert ids(FeedFilter(sites=("plant2",))) == [("finding", "a")]
        assert ids(FeedFilter(min_severity=int(Severity.HIGH))) == [("finding", "b")]
        assert ids(FeedFilter(techniques=("T0836", "T0999"))) == [("finding", "b")]
        assert ids(FeedFilter(detectors=("scan.hosts",))) == [("finding", "a")]
        assert ids(FeedFilter(assets=("10.0.0.5",))) == [("finding", "a")]
        assert [e.kind for e in store.read_feed(0, filters=FeedFilter(kinds=("asset", "agent")))] \
            == ["asset", "agent"]
        (entry,) = store.read_feed(0, filters=FeedFilter(sites=("plant2",)))
        assert entry.body["revision"] == 2 and entry.techniques == ()

    def test_resume_without_gap_or_duplicate(self, store: Store) -> None:
        """Reading in pages from the last cursor gives every entry exactly once."""
        for n in range(7):
            store.ingest.commit_sync(A1, "s", batch(A1, 1, n * 3 + 1,
                                                     [finding(f"f{n}-{j}") for j in range(3)]))
        got, cursor = [], 0
        while page := store.read_feed(cursor, limit=4):
            got += [e.body["finding_id"] for e in page]
            cursor = page[-1].cursor
        assert got == [f"f{n}-{j}" for n in range(7) for j in range(3)]
        assert store.feed_head() == cursor == 21

    def test_one_entry_per_change(self, store: Store) -> None:
        """A duplicate adds no entry; a new revision adds one that is not new."""
        b = batch(A1, 1, 1, [finding("a", 1)])
        store.ingest.commit_sync(A1, "s", b)
        store.ingest.commit_sync(A1, "s", b)
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 2, [finding("a", 1), finding("a", 2)]))
        assert [(e.cursor, e.new) for e in store.read_feed(0)] == [(1, True), (2, False)]


class TestWaiter:
    def test_wakes_on_commit(self, store: Store) -> None:
        """A reader waiting past the head wakes soon after another transaction commits."""
        from otsentry.collector.store import FeedWaiter

        waiter = FeedWaiter(store.engine, poll_s=0.05)
        got: list[tuple[int, float]] = []

        def wait() -> None:
            t0 = time.monotonic()
            got.append((waiter.wait(0, timeout=20), time.monotonic() - t0))

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.3)
        store.ingest.commit_sync(A1, "s", batch(A1, 1, 1, [finding("a")]))
        t.join()
        waiter.close()
        assert got[0][0] == 1 and 0.2 < got[0][1] < 5

    def test_times_out(self, store: Store) -> None:
        """With nothing new, wait returns the unchanged head after the timeout."""
        from otsentry.collector.store import FeedWaiter

        waiter = FeedWaiter(store.engine, poll_s=0.05)
        t0 = time.monotonic()
        assert waiter.wait(0, timeout=0.3) == 0
        assert time.monotonic() - t0 >= 0.29
        waiter.close()
