"""The engine: aggregation, revisions, ids, evidence, pcap slices, context and suppression."""

from __future__ import annotations

import io
import struct

from scapy.utils import rdpcap

from otsentry.agent.detect import (RING_FRAMES, DetectConfig, Engine, config_from_dict,
                                    detect_frames)
from otsentry.agent.detect.testing import Wire
from otsentry.agent.pipeline import Pipeline, PipelineConfig
from otsentry.agent.testing import Conversation
from otsentry.common.finding import Severity

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _session(ops: list, client: str = "10.0.0.66", server: str = "10.0.0.20",
             step: int = S // 10, wire: Wire | None = None, start: int = T0) -> Wire:
    wire = wire or Wire()
    conn = wire.connect(start, client, server)
    for k, (req, rsp) in enumerate(ops):
        wire.exchange(conn, start + (k + 1) * step, req, rsp)
    return wire


def test_repeats_aggregate_into_one_finding_with_a_count() -> None:
    """Five FC 8/1 restarts from one host are one finding with count 5."""
    conv = Conversation(unit=1)
    wire = _session([conv.exchange(8, sub_function=1) for _ in range(5)])
    _eng, findings = detect_frames(wire.sorted_frames())
    [f] = [f for f in findings if f.kind == "modbus.fc8-restart"]
    assert (f.count, f.severity, f.techniques) == (5, Severity.HIGH, ("T0816",))
    assert f.evidence.unit == 1 and f.evidence.function_code == 8 and f.evidence.values == (1,)
    assert len(f.evidence.frames) == 5 and f.last_seen_ns > f.first_seen_ns


def test_revisions_are_rate_limited_and_flushed_at_the_end() -> None:
    """Hits within the revision interval are held back, then emitted once at finish."""
    conv = Conversation(unit=1)
    wire = _session([conv.exchange(8, sub_function=1) for _ in range(50)])
    eng, _ = detect_frames(wire.sorted_frames())
    [f] = [f for f in eng.findings.values() if f.kind == "modbus.fc8-restart"]
    assert f.count == 50 and f.revision == 2


def test_finding_ids_are_stable_across_replays() -> None:
    """The same capture gives the same finding ids."""
    conv = Conversation(unit=1)
    frames = _session([conv.exchange(43, read_code=1)]).sorted_frames()
    ids = [[f.id for f in detect_frames(frames)[1]] for _ in range(2)]
    assert ids[0] == ids[1] and len(ids[0][0]) == 32


def test_medium_findings_carry_a_pcap_slice_wireshark_can_read() -> None:
    """A medium+ finding carries a valid pcap of its flow's last frames."""
    conv = Conversation(unit=1)
    wire = _session([conv.exchange(8, sub_function=4)])
    [f] = [f for f in detect_frames(wire.sorted_frames())[1] if f.kind == "modbus.fc8-listen-only"]
    packets = rdpcap(io.BytesIO(f.evidence.pcap))
    assert len(packets) >= 4 and packets[0].time > T0 / S - 1


def test_low_findings_carry_no_pcap() -> None:
    """Below medium, no pcap slice is attached."""
    wire = _session([Conversation(unit=1).exchange(8, sub_function=0)])
    [f] = [f for f in detect_frames(wire.sorted_frames())[1] if f.kind == "modbus.fc8-other"]
    assert f.severity == Severity.MEDIUM or f.evidence.pcap == b""


def test_device_id_read_severity_depends_on_who_reads() -> None:
    """FC 43 by the master that polls the device is info; by a host never seen before, high."""
    conv = Conversation(unit=1)
    polls = [conv.exchange(3, address=0, registers=(1,)) for _ in range(5)]
    wire = _session(polls + [conv.exchange(43, read_code=1)], client="10.0.0.10")
    _session([conv.exchange(43, read_code=1)], client="10.0.0.66", wire=wire, start=T0 + 5 * S)
    found = {f.assets[0].ip: f.severity for f in detect_frames(wire.sorted_frames())[1]
             if f.kind == "modbus.device-id"}
    assert found == {"10.0.0.10": Severity.INFO, "10.0.0.66": Severity.HIGH}


def test_device_id_read_while_learning_is_info_and_after_it_high_from_a_new_host() -> None:
    """The SCADA host reads the identification as it connects, before its first poll: while
    learning that is normal (info); after learning, the same read from a new host is high."""
    conv = Conversation(unit=1)
    reads = [conv.exchange(43, read_code=1)] + [conv.exchange(3, address=0, registers=(1,))
                                                 for _ in range(5)]
    wire = _session(reads, client="10.0.0.10")
    _session([conv.exchange(43, read_code=1)], client="10.0.0.66", wire=wire, start=T0 + 30 * S)
    found = {f.assets[0].ip: f.severity for f in detect_frames(
        wire.sorted_frames(), learn_ns=20 * S)[1] if f.kind == "modbus.device-id"}
    assert found == {"10.0.0.10": Severity.INFO, "10.0.0.66": Severity.HIGH}


def test_suppress_rules_drop_matching_findings() -> None:
    """A suppress rule for the engineering workstation silences its restarts only."""
    cfg = config_from_dict({"suppress": [{"detectors": ["modbus.fc8-*"], "client": "10.0.0.66"}]})
    conv = Conversation(unit=1)
    wire = _session([conv.exchange(8, sub_function=1)])
    _session([conv.exchange(8, sub_function=1)], client="10.0.0.67", wire=wire, start=T0 + S)
    eng, findings = detect_frames(wire.sorted_frames(), config=cfg)
    assert [f.assets[0].ip for f in findings if f.kind == "modbus.fc8-restart"] == ["10.0.0.67"]
    assert eng.suppressed == {"modbus.fc8-restart": 1}


def test_disabled_detectors_stay_silent() -> None:
    """A detector listed in disable reports nothing."""
    wire = _session([Conversation(unit=1).exchange(8, sub_function=1)])
    cfg = DetectConfig(disable=frozenset({"modbus.fc8-restart"}))
    assert not [f for f in detect_frames(wire.sorted_frames(), config=cfg)[1]
                if f.kind == "modbus.fc8-restart"]


def test_state_is_bounded_and_evictions_are_reported() -> None:
    """With a small key budget, a sweep over many hosts evicts state and says so."""
    wire = Wire()
    for h in range(300):
        conn = wire.connect(T0 + h * 1000 * 1000, f"10.1.{h // 250}.{h % 250}", "10.0.0.20")
        wire.exchange(conn, T0 + h * 1000 * 1000 + 10_000,
                      *Conversation(unit=1).exchange(3, address=0, registers=(1,)))
    eng, findings = detect_frames(wire.sorted_frames(), config=DetectConfig(max_keys=100))
    assert all(len(t) <= 100 for t in eng.tables)
    assert any(f.kind == "detect.state-evicted" for f in findings)


def test_a_flow_whose_pair_was_evicted_shares_the_new_pair_state() -> None:
    """Two connections of one client to one server count as one pair, even after the pair's
    state was evicted while the first connection stayed open: 150 requests on each within
    a second make one flood (200), which two separate states would each miss."""
    ms = 1_000_000
    wire, conv = Wire(), Conversation(unit=1)
    first = wire.connect(T0, "10.0.0.66", "10.0.0.20")
    wire.exchange(first, T0 + 10 * ms, *conv.exchange(3, address=0, registers=(1,)))
    for h in range(150):  # other pairs evict 10.0.0.66's state (max_keys 100)
        conn = wire.connect(T0 + S + h * ms, f"10.1.0.{h + 1}", "10.0.0.20")
        wire.exchange(conn, T0 + S + h * ms + 100_000, *conv.exchange(3, address=0,
                                                                     registers=(1,)))
    second = wire.connect(T0 + 2 * S, "10.0.0.66", "10.0.0.20")
    t = T0 + 3 * S
    for k in range(150):
        for conn in (first, second):
            wire.exchange(conn, t + k * 3 * ms, *conv.exchange(3, address=0, registers=(1,)),
                          latency_ns=ms)
    eng, findings = detect_frames(wire.sorted_frames(), config=DetectConfig(max_keys=100))
    assert eng.pairs.evicted > 0
    assert [f.assets[0].ip for f in findings if f.kind == "rate.flood"] == ["10.0.0.66"]


def test_a_held_back_revision_is_emitted_by_the_tick_once_its_interval_is_over() -> None:
    """Restarts for 5 s, then only polls: the held-back revision comes out at the first tick
    60 s after the last emitted one, and the finding closes 5 min after its last hit,
    both while traffic goes on (not at the end)."""
    conv = Conversation(unit=1)
    ops = [conv.exchange(8, sub_function=1) for _ in range(50)]
    ops += [conv.exchange(3, address=0, registers=(1,)) for _ in range(4000)]  # 400 s more
    eng = Engine()
    pipe = Pipeline([eng], PipelineConfig(ring_frames=RING_FRAMES))
    revisions = []
    for ts, linktype, data in _session(ops).sorted_frames():
        pipe.feed(ts, linktype, data)
        revisions += [(r.revision, r.count, ts) for r in eng.drain()
                      if r.kind == "modbus.fc8-restart"]
    first, second = revisions  # opened at the first restart; the rest held back, then emitted
    assert first[:2] == (1, 1) and second[:2] == (2, 50)
    assert 60 * S <= second[2] - first[2] <= 62 * S
    last_hit = T0 + 50 * S // 10
    assert not eng.agg.open and eng.agg.due > last_hit + 300 * S


def test_malformed_requests_paired_by_their_header_still_count() -> None:
    """Requests too short to decode, answered with exceptions, are transactions whose
    request is malformed: the families that count every transaction count them (eight
    function codes tried is a sweep) and the malformed frames are findings of their own."""
    def adu(tid: int, fc: int, pdu_rest: bytes) -> bytes:
        pdu = bytes([fc]) + pdu_rest
        return struct.pack(">HHHB", tid, 0, 1 + len(pdu), 1) + pdu

    wire = Wire()
    conn = wire.connect(T0, "10.0.0.66", "10.0.0.20")
    fcs = (1, 2, 3, 4, 5, 6, 15, 16)
    for k, fc in enumerate(fcs):
        wire.exchange(conn, T0 + (k + 1) * S // 10, adu(k + 1, fc, b"\x00"),
                      adu(k + 1, fc | 0x80, b"\x01"))
    _eng, findings = detect_frames(wire.sorted_frames())
    [sweep] = [f for f in findings if f.kind == "scan.function-codes"]
    assert sweep.evidence.values == fcs
    malformed = [f for f in findings if f.kind == "modbus.malformed"]
    assert malformed and malformed[-1].count == len(fcs)
