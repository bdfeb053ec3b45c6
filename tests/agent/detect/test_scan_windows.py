"""The scan windows count a poll's reads through the signature's ``Seen`` with no store per
read: the counts and the windows' contents must be exactly those of plain ``Window.add``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from otsentry.agent.detect._scans import _MAX_SEEN, _Pair
from otsentry.agent.detect._state import Seen, Window

S = 1_000_000_000
SPAN = 60 * S


def _replay(events: list[tuple[int, str, int, int, int]]) -> None:
    """Feed ``(ts, kind, unit, fc, address)`` to a scan pair (reads through ``Seen``) and to
    plain windows; ``kind`` is ``read``, ``other`` (units and function codes only, as an
    exception or a write) or ``forget`` (the engine let its request signatures go)."""
    pair = _Pair(SPAN)
    plain = (Window(SPAN, 256), Window(SPAN, 256), Window(SPAN, 512))
    polls: dict[tuple[int, int, int], Seen] = {}  # what the engine's Poll objects hold
    for ts, kind, unit, fc, address in events:
        if kind == "forget":
            polls.clear()
            continue
        if kind == "read":
            seen = polls.get((unit, fc, address))
            if seen is None or not seen.live:
                seen = polls[(unit, fc, address)] = pair.new_seen(unit, fc, address)
            got = [pair.units.count(ts, seen), pair.fcs.count(ts, seen),
                   pair.blocks.count(ts, seen)]
            seen.ts = ts
            want = [plain[0].add(ts, unit), plain[1].add(ts, fc),
                    plain[2].add(ts, fc << 16 | address)]
        else:
            got = [pair.units.add(ts, unit), pair.fcs.add(ts, fc)]
            want = [plain[0].add(ts, unit), plain[1].add(ts, fc)]
        assert got == want, (ts, kind, unit, fc, address)
    for ours, theirs in zip((pair.units, pair.fcs, pair.blocks), plain):
        ours._settle()
        ours.fold()
        theirs._settle()
        assert list(ours.items.items()) == list(theirs.items.items())
        assert ours.oldest == theirs.oldest


_EVENTS = st.lists(
    st.tuples(st.sampled_from([0, 1, S // 10, 20 * S, 59 * S, 61 * S]),
              st.sampled_from(["read"] * 6 + ["other", "forget"]),
              st.integers(0, 3), st.sampled_from([1, 2, 3, 4, 6]), st.integers(0, 7)),
    max_size=120)


@given(_EVENTS)
def test_reads_through_seen_count_as_plain_adds(steps: list) -> None:
    ts, events = 0, []
    for gap, kind, unit, fc, address in steps:
        ts += gap
        events.append((ts, kind, unit, fc, address))
    _replay(events)


def test_an_address_sweep_beyond_every_bound_counts_as_plain_adds() -> None:
    """A sweep of 1,500 blocks between a steady poll's reads: the block window evicts (it
    keeps 512), the pair lets its ``Seen`` go (it keeps 256) and items expire."""
    events = []
    ts = 0
    for i in range(6000):
        ts += S // 20 if i % 1000 else SPAN + S  # a pause longer than the window now and then
        if i % 4 == 0:
            events.append((ts, "read", 1, 3, 100 * (i % 3)))  # the poll
        elif i % 97 == 0:
            events.append((ts, "other", 1, 16, 0))
        elif i % 1999 == 0:
            events.append((ts, "forget", 0, 0, 0))
        else:
            events.append((ts, "read", (i // 7) % 4, 1 + i % 4, i % 1500))
    assert 1500 > 2 * _MAX_SEEN
    _replay(events)
