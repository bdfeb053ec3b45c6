"""The feed filter in memory (``matches``, the feed hub's cache) lets through exactly what the SQL
filter of ``read_feed`` does, on both databases."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otsentry.collector.store import (EVERYTHING, FeedFilter, FeedRow, append_feed, connect, head,
                                      matches, read, read_feed, write)

# Few, similar names so that filters hit: case and "_" differ (SQL LIKE would confuse them).
_NAMES = st.sampled_from(["plant1", "Plant1", "plant_", "plantx", "T0855", "t0855", "T0836",
                          "10.0.0.5", "10.0.0.50", "k", "K"])
_KINDS = st.sampled_from(["finding", "incident", "asset", "agent"])


def _marks(items: list[str]) -> str:
    # As the ingest writes lists (store/_ingest.py): ",a,b," or "" for none.
    return "," + ",".join(items) + "," if items else ""


@st.composite
def _rows(draw: st.DrawFn) -> FeedRow:
    kind = draw(_KINDS)
    sites = draw(st.lists(_NAMES, min_size=1, max_size=3))
    return FeedRow(kind, draw(st.integers(1, 50)), draw(st.booleans()),
                   _marks(sites) if kind == "incident" else sites[0], "",
                   draw(st.none() | st.integers(0, 4)), draw(_NAMES),
                   _marks(draw(st.lists(_NAMES, max_size=3))),
                   _marks(draw(st.lists(_NAMES, max_size=3))))


_FILTERS = st.builds(
    FeedFilter, kinds=st.lists(_KINDS, max_size=2).map(tuple),
    sites=st.lists(_NAMES, max_size=2).map(tuple), min_severity=st.none() | st.integers(0, 4),
    techniques=st.lists(_NAMES, max_size=2).map(tuple),
    detectors=st.lists(_NAMES, max_size=2).map(tuple),
    assets=st.lists(_NAMES, max_size=2).map(tuple), new_only=st.booleans())


def test_matches_equals_sql(db_url: str) -> None:
    """For generated entries and filters, read_feed(filter) == the entries that matches() keeps."""
    engine = connect(db_url)

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(rows=st.lists(_rows(), min_size=1, max_size=12), filters=st.lists(_FILTERS, max_size=6))
    def check(rows: list[FeedRow], filters: list[FeedFilter]) -> None:
        with write(engine) as conn:  # each example reads only what it appended
            after = head(conn)
            append_feed(conn, rows, 1)
        with read(engine) as conn:
            every = read_feed(conn, after, 100, EVERYTHING, bodies=False)
            assert len(every) == len(rows)
            for f in filters:
                want = [e.cursor for e in read_feed(conn, after, 100, f, bodies=False)]
                assert [e.cursor for e in every if matches(f, e)] == want, f

    try:
        check()
    finally:
        engine.dispose()


def test_names_match_exactly(db_url: str) -> None:
    """A filter name is matched whole and with its case: "t0855" and "T08_5" do not find T0855."""
    engine = connect(db_url)
    try:
        with write(engine) as conn:
            append_feed(conn, [FeedRow("finding", 1, True, "plant1", "", 3, "k", ",T0855,",
                                       ",10.0.0.5,")], 1)
        with read(engine) as conn:
            def hits(f: FeedFilter) -> int:
                return len(read_feed(conn, 0, 10, f, bodies=False))
            assert hits(FeedFilter(techniques=("T0855",))) == 1
            assert hits(FeedFilter(techniques=("t0855",))) == 0
            assert hits(FeedFilter(techniques=("T08_5",))) == 0
            assert hits(FeedFilter(assets=("10.0.0.5",))) == 1
            assert hits(FeedFilter(assets=("10.0.0.",))) == 0
    finally:
        engine.dispose()
