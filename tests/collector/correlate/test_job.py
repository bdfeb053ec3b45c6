"""Correlation into incidents on both databases: site rules, cross-site rules, exactly once."""

from __future__ import annotations

import threading
from collections import defaultdict

from otsentry.collector.correlate import CrossSite, Rules, correlate_once
from otsentry.collector.store import FeedFilter, Store, read
from otsentry.collector.store import _schema as S
from otsentry.common.finding import Severity
from otsentry.common.pki import Identity
from otsentry.v1 import inventory_pb2
from sqlalchemy import func, select

from tests.collector.store.helpers import batch, delta, finding

P1, P2, P3 = (Identity.agent(f"plant{i}", "a1") for i in (1, 2, 3))
ATTACKER = "45.33.32.156"  # a global address: matches across sites
MIN = 60 * 1_000_000_000


class Feeder:
    """Sends findings as each agent's next messages, on the store's clock."""

    def __init__(self, store: Store) -> None:
        self.store, self.seq = store, defaultdict(lambda: 1)

    def send(self, ident: Identity, *bodies: object) -> None:
        self.store.ingest.commit_sync(ident, "s", batch(ident, 1, self.seq[ident], list(bodies)))
        self.seq[ident] += len(bodies)


def _scan(fid: str, client: str, first: int = 100) -> object:
    return finding(fid, kind="scan.hosts", severity=Severity.MEDIUM, techniques=("T0846",),
                   client=client, first=first)


def _write(fid: str, client: str, first: int = 200) -> object:
    return finding(fid, kind="policy.write-not-allowed", severity=Severity.HIGH,
                   techniques=("T0855", "T0836"), client=client, first=first)


def _incidents(store: Store) -> list[dict]:
    with read(store.engine) as conn:
        return [dict(r) for r in conn.execute(select(S.incidents).order_by(S.incidents.c.id))
                .mappings()]


def _by_rule(store: Store) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for i in _incidents(store):
        out[i["rule"]].append(i)
    return out


class TestSite:
    def test_recon_then_write(self, store: Store) -> None:
        """One source scanning then writing at one site is one incident, raised to critical."""
        fd = Feeder(store)
        fd.send(P1, _scan("s1", "10.0.0.66"))
        fd.send(P1, _write("w1", "10.0.0.66"), finding("other", client="10.0.0.5"))
        ran = correlate_once(store.engine, Rules())
        (inc,) = _incidents(store)
        assert ran.created == [inc["id"]]
        assert (inc["rule"], inc["member_count"], inc["sites"]) == ("site-source", 2, ",plant1,")
        assert inc["severity"] == Severity.CRITICAL and "then write" in inc["title"]
        assert inc["techniques"] == ",T0846,T0855,T0836,"

    def test_one_detector_is_no_incident(self, store: Store) -> None:
        """Many findings of one detector from one source make no incident."""
        fd = Feeder(store)
        fd.send(P1, *[_scan(f"s{i}", "10.0.0.66") for i in range(5)])
        correlate_once(store.engine, Rules())
        assert _incidents(store) == []

    def test_window_opens_a_new_incident(self, db_url: str) -> None:
        """A match after the window has passed opens a second incident for the same source."""
        clock = [10**18]
        store = Store(db_url, clock=lambda: clock[0])
        try:
            fd = Feeder(store)
            fd.send(P1, _scan("s1", "10.0.0.66"), _write("w1", "10.0.0.66"))
            correlate_once(store.engine, Rules())
            clock[0] += 120 * MIN
            fd.send(P1, _scan("s2", "10.0.0.66"), _write("w2", "10.0.0.66"))
            correlate_once(store.engine, Rules())
            assert [i["member_count"] for i in _incidents(store)] == [2, 2]
        finally:
            store.close()


class TestCrossSite:
    def test_routable_source(self, store: Store) -> None:
        """The same global address at two sites is one cross-site incident, severity raised."""
        fd = Feeder(store)
        fd.send(P1, _scan("s1", ATTACKER))
        fd.send(P2, _scan("s2", ATTACKER))
        correlate_once(store.engine, Rules())
        (inc,) = _by_rule(store)["cross-site-source"]
        assert (inc["sites"], inc["site_count"], inc["scope"]) == (",plant1,plant2,", 2, ATTACKER)
        assert inc["severity"] == Severity.MEDIUM + 1

    def test_private_sources_never_match(self, store: Store) -> None:
        """RFC 1918 and ULA sources at several sites are never one incident, whatever else matches."""
        fd = Feeder(store)
        for ip in ("10.0.0.66", "172.16.5.5", "192.168.1.7", "fd00::66"):
            fd.send(P1, _scan(f"a{ip}", ip))
            fd.send(P2, _scan(f"b{ip}", ip))
        correlate_once(store.engine, Rules())
        assert _by_rule(store)["cross-site-source"] == []

    def test_excluded_network(self, store: Store) -> None:
        """Addresses in the rules' exclude list never match across sites either."""
        import ipaddress
        fd = Feeder(store)
        fd.send(P1, _scan("s1", ATTACKER))
        fd.send(P2, _scan("s2", ATTACKER))
        correlate_once(store.engine, Rules(exclude=(ipaddress.ip_network("45.33.0.0/16"),)))
        assert _by_rule(store)["cross-site-source"] == []

    def test_same_technique_sequence(self, store: Store) -> None:
        """Recon then write from different private sources at two sites: one cross-site incident."""
        fd = Feeder(store)
        fd.send(P1, _scan("s1", "10.0.0.66"), _write("w1", "10.0.0.66"))
        fd.send(P2, _scan("s2", "192.168.9.9"), _write("w2", "192.168.9.9"))
        correlate_once(store.engine, Rules())
        rules = _by_rule(store)
        assert len(rules["site-source"]) == 2
        (inc,) = rules["cross-site-techniques"]
        assert (inc["site_count"], inc["member_count"]) == (2, 4)
        assert inc["severity"] == Severity.CRITICAL

    def test_device_id_change_pattern(self, store: Store) -> None:
        """The same firmware change on devices at two sites is one incident of asset changes."""
        fd = Feeder(store)
        for ident in (P1, P2):
            fd.send(ident, delta("10.0.0.9", at=100, unit=1, device_id={0: b"Acme", 2: b"v1.0"}))
            fd.send(ident, delta("10.0.0.9", inventory_pb2.CHANGE_KIND_UPDATED, at=200, unit=1,
                                 device_id={0: b"Acme", 2: b"v6.6"}))
        correlate_once(store.engine, Rules())
        (inc,) = _incidents(store)
        assert (inc["rule"], inc["site_count"], inc["member_count"]) == ("cross-site-device-id", 2, 2)

    def test_timing(self, store: Store) -> None:
        """The same detector firing at three sites within the window is one incident."""
        fd = Feeder(store)
        for i, ident in enumerate((P1, P2, P3)):
            fd.send(ident, finding(f"r{i}", kind="rate.flood", severity=Severity.HIGH,
                                   techniques=("T0814",), client=f"10.0.{i}.1"))
        rules = Rules(cross_site_timing=CrossSite(window_s=600, min_sites=3))
        correlate_once(store.engine, rules)
        (inc,) = _incidents(store)
        assert (inc["rule"], inc["site_count"], inc["severity"]) == ("cross-site-timing", 3,
                                                                     Severity.CRITICAL)


class TestExactlyOnce:
    def test_rerun_and_resend_change_nothing(self, store: Store) -> None:
        """Running again, and re-delivered batches, create no incident and no feed entry."""
        fd = Feeder(store)
        b = batch(P1, 1, 1, [_scan("s1", ATTACKER), _write("w1", ATTACKER)])
        store.ingest.commit_sync(P1, "s", b)
        fd.send(P2, _scan("s2", ATTACKER))
        correlate_once(store.engine, Rules())
        before, head = _incidents(store), store.feed_head()
        store.ingest.commit_sync(P1, "s", b)
        assert correlate_once(store.engine, Rules()).created == []
        assert _incidents(store) == before and store.feed_head() == head
        incidents = store.read_feed(0, filters=FeedFilter(kinds=("incident",), sites=("plant2",)))
        assert {e.ref for e in incidents} == {i["id"] for i in before if "plant2" in i["sites"]}

    def test_concurrent_correlators(self, db_url: str) -> None:
        """Three correlators racing while agents ingest: every incident once, same as one correlator."""
        store = Store(db_url)
        stop = threading.Event()

        def correlator() -> None:
            while not stop.is_set():
                correlate_once(store.engine, Rules(), limit=7)

        ts = [threading.Thread(target=correlator) for _ in range(3)]
        for t in ts:
            t.start()
        try:
            fd = Feeder(store)
            for n in range(8):
                for ident in (P1, P2, P3):
                    fd.send(ident, _scan(f"s{n}", f"45.33.32.{n}"), _write(f"w{n}", f"45.33.32.{n}"))
        finally:
            stop.set()
            for t in ts:
                t.join()
        while correlate_once(store.engine, Rules()).entries:
            pass
        with read(store.engine) as conn:
            keys = conn.execute(select(S.incidents.c.rule, S.incidents.c.scope,
                                       func.count()).group_by(S.incidents.c.rule,
                                                              S.incidents.c.scope)).all()
        store.close()
        assert all(n == 1 for _, _, n in keys)
        rules = defaultdict(int)
        for r, _, _ in keys:
            rules[r] += 1
        assert rules == {"site-source": 24, "cross-site-source": 8, "cross-site-techniques": 1,
                         "cross-site-timing": 2}
