"""Tests of the finding model and its merge-forward rule."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otsentry.common.finding import (
    MAX_PCAP_SLICE, Evidence, Finding, Severity, Times, finding_id, merge_all, merge_forward,
)
from tests.common.strategies import copies_of_one_finding, findings


def _finding(**kw: object) -> Finding:
    base = dict(id="f-1", revision=1, kind="modbus.fc8-restart", severity=Severity.HIGH,
                techniques=("T0816",), first_seen_ns=100, last_seen_ns=100, count=1, assets=(),
                summary="10.0.0.5 restarted the communications of PLC 10.0.0.9 unit 1.")
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


class TestSeverity:
    def test_parse(self) -> None:
        """Severities parse case-insensitively and print in lower case."""
        assert Severity.parse(" High ") is Severity.HIGH
        assert str(Severity.CRITICAL) == "critical"
        assert Severity.MEDIUM > Severity.LOW

    def test_parse_unknown(self) -> None:
        """An unknown severity name is refused with the list of valid names."""
        with pytest.raises(ValueError, match="info, low, medium, high, critical"):
            Severity.parse("urgent")


class TestValidation:
    @pytest.mark.parametrize("kw", [
        {"id": ""}, {"revision": 0}, {"count": 0}, {"first_seen_ns": 5, "last_seen_ns": 4},
    ])
    def test_invalid(self, kw: dict[str, object]) -> None:
        """Findings that break the model's invariants cannot be built."""
        with pytest.raises(ValueError):
            _finding(**kw)

    def test_pcap_bound(self) -> None:
        """A pcap slice larger than the bound is refused."""
        with pytest.raises(ValueError, match="exceeds"):
            Evidence(pcap=b"\0" * (MAX_PCAP_SLICE + 1))

    def test_details_sorted(self) -> None:
        """Evidence details are kept as sorted pairs, built from a dict."""
        ev = Evidence.make(details={"b": "2", "a": "1"}, unit=1)
        assert ev.details == (("a", "1"), ("b", "2"))
        with pytest.raises(ValueError):
            Evidence(details=(("b", "2"), ("a", "1")))

    def test_severity_coerced(self) -> None:
        """An integer severity becomes the enum."""
        assert _finding(severity=2).severity is Severity.MEDIUM


class TestRevise:
    def test_revise(self) -> None:
        """A revision bumps the revision and count and moves last_seen forward only."""
        f = _finding()
        g = f.revise(last_seen_ns=500, agent_ns=9, add=3)
        assert (g.revision, g.count, g.last_seen_ns, g.first_seen_ns) == (2, 4, 500, 100)
        assert g.times == Times(capture_ns=500, agent_ns=9)
        h = g.revise(last_seen_ns=50, agent_ns=10, severity=Severity.CRITICAL)
        assert (h.revision, h.last_seen_ns, h.severity) == (3, 500, Severity.CRITICAL)

    def test_revise_keeps_what_it_is_not_told_to_change(self) -> None:
        """Every field not named (nor worked out by the revision) is carried over as is;
        the ones named are replaced, an integer severity becoming the enum."""
        ev = Evidence.make(unit=1, details={"b": "2", "a": "1"})
        f = _finding(evidence=ev, techniques=("T0836",))
        g = f.revise(last_seen_ns=f.last_seen_ns, agent_ns=1, add=0, summary="other", severity=3)
        assert g.severity is Severity.HIGH and g.summary == "other" and g.count == f.count
        assert g == dataclasses.replace(f, revision=2, severity=Severity.HIGH, summary="other",
                                        times=Times(f.last_seen_ns, 1))

    def test_revise_refuses_what_it_works_out_or_does_not_know(self) -> None:
        """The revision, count, last_seen and times come from the arguments; other names
        are a caller's bug."""
        f = _finding()
        for bad in ({"revision": 5}, {"count": 2}, {"times": Times(1, 1)}, {"colour": "red"}):
            with pytest.raises(TypeError):
                f.revise(last_seen_ns=1, agent_ns=1, **bad)
        with pytest.raises(ValueError):
            f.revise(last_seen_ns=1, agent_ns=1, add=-1)


class TestMergeForward:
    def test_highest_revision_wins(self) -> None:
        """The newest revision's content wins, whichever argument it is."""
        f = _finding()
        g = f.revise(last_seen_ns=200, agent_ns=1, summary="newer")
        assert merge_forward(f, g) == g
        assert merge_forward(g, f) == g

    def test_counts_never_go_backwards(self) -> None:
        """A higher revision with a smaller count or older last_seen does not move them back."""
        f = _finding(count=10, last_seen_ns=900)
        g = _finding(revision=2, count=3, last_seen_ns=150, first_seen_ns=50)
        m = merge_forward(f, g)
        assert (m.revision, m.count, m.last_seen_ns, m.first_seen_ns) == (2, 10, 900, 50)

    def test_different_ids(self) -> None:
        """Merging two different findings is a bug and raises."""
        with pytest.raises(ValueError):
            merge_forward(_finding(), _finding(id="f-2"))

    def test_ingest_time_kept(self) -> None:
        """The first ingest time survives later copies that have none."""
        f = _finding(times=Times(100, 5, ingest_ns=77))
        g = f.revise(last_seen_ns=101, agent_ns=6)
        assert merge_forward(f, g).times.ingest_ns == 77

    @given(copies_of_one_finding(), st.randoms())
    def test_order_does_not_matter(self, copies: list[Finding], rnd: object) -> None:
        """Any arrival order, with duplicates, merges to the same finding."""
        expected = functools.reduce(merge_forward, copies)
        shuffled = list(copies) + list(copies[: len(copies) // 2])
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        assert functools.reduce(merge_forward, shuffled) == expected
        assert merge_all(shuffled) == {"f-1": expected}

    @given(findings(fid="x"), findings(fid="x"))
    def test_commutative_idempotent(self, a: Finding, b: Finding) -> None:
        """merge(a, b) == merge(b, a) and merging a result again changes nothing."""
        m = merge_forward(a, b)
        assert m == merge_forward(b, a)
        assert merge_forward(m, a) == m and merge_forward(m, b) == m and merge_forward(a, a) == a

    @given(findings(fid="x"), findings(fid="x"), findings(fid="x"))
    def test_associative(self, a: Finding, b: Finding, c: Finding) -> None:
        """Grouping does not matter: receivers may merge batches in any shape."""
        assert merge_forward(merge_forward(a, b), c) == merge_forward(a, merge_forward(b, c))

    @given(copies_of_one_finding())
    def test_monotone(self, copies: list[Finding]) -> None:
        """The merged count and last_seen are the maxima, the revision is the highest."""
        m = functools.reduce(merge_forward, copies)
        assert m.count == max(f.count for f in copies)
        assert m.last_seen_ns == max(f.last_seen_ns for f in copies)
        assert m.first_seen_ns == min(f.first_seen_ns for f in copies)
        assert m.revision == max(f.revision for f in copies)


class TestFindingId:
    def test_stable(self) -> None:
        """The id depends only on scope, kind, key and first occurrence."""
        a = finding_id("k", ("10.0.0.1", 1, 8), 100, scope="site/a")
        assert a == finding_id("k", ("10.0.0.1", 1, 8), 100, scope="site/a")
        assert len(a) == 32 and a != finding_id("k", ("10.0.0.1", 1, 8), 101, scope="site/a")
        assert a != finding_id("k", ("10.0.0.1", 1, 8), 100, scope="site/b")
