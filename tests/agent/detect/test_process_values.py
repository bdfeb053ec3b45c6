"""Process values read outside their learned envelope: one finding per register table,
folded hit by hit, with the evidence of the latest answer; config still applies."""

from __future__ import annotations

from otsentry.agent.detect import config_from_dict, detect_frames
from otsentry.agent.detect.testing import Wire
from otsentry.agent.testing import Conversation
from otsentry.common.finding import Severity

S = 1_000_000_000
T0 = 1_700_000_000 * S
LEARN = 30 * S
KIND = "process.value-out-of-envelope"


def _plant(after: list[tuple[int, tuple[int, int]]]) -> Wire:
    """An HMI polls holding registers 10-11 every second: 30 s of values 100-111 to learn,
    then one poll per ``(seconds after learning, values)``."""
    wire, conv = Wire(), Conversation(unit=1)
    conn = wire.connect(T0, "10.0.0.10", "10.0.0.20")
    for k in range(30):
        wire.exchange(conn, T0 + (k + 1) * S,
                      *conv.exchange(3, address=10, registers=(100 + k % 12, 100 + k % 12)))
    for dt, regs in after:
        wire.exchange(conn, T0 + LEARN + dt, *conv.exchange(3, address=10, registers=regs))
    return wire


def _values(wire: Wire, config: dict | None = None) -> tuple:
    eng, findings = detect_frames(wire.sorted_frames(), learn_ns=LEARN,
                                  config=config_from_dict(config or {}))
    return eng, [f for f in findings if f.kind == KIND]


def test_answers_out_of_range_fold_into_one_finding_with_the_latest_evidence() -> None:
    """Forty answers out of range are one finding counted 40; its evidence and sentence are
    the last answer's, made when the revision is emitted."""
    polls = [(k * S, (105, 500 + k)) for k in range(1, 41)]
    _eng, [f] = _values(_plant(polls))
    assert (f.count, f.severity, f.techniques) == (40, Severity.LOW, ("T0836", "T0831"))
    assert f.evidence.addresses == (11,) and f.evidence.values == (540,)
    assert f.evidence.unit == 1 and f.evidence.function_code == 3
    assert len(f.evidence.frames) == 32  # the first 8 and the last 24 answers
    assert f.summary.startswith("holding register 11 reads 540, outside ")
    assert f.summary.endswith(" on 10.0.0.20 unit 1 (learned range).")


def test_a_quiet_window_closes_the_finding_and_the_next_answer_opens_another() -> None:
    """Out of range three times, back in range (that return is a jump: a fourth hit) for
    longer than the window (300 s), then out again: two findings, each with its own count
    and values."""
    polls = [(k * S, (500, 105)) for k in range(1, 4)]
    polls += [(k * S, (105, 105)) for k in range(4, 320)]
    polls += [(k * S, (105, 900)) for k in range(320, 322)]
    _eng, found = _values(_plant(polls))
    assert [(f.count, f.evidence.addresses, f.evidence.values) for f in found] == [
        (4, (10,), (105,)), (2, (11,), (900,))]
    assert "register 10 jumped from 500 to 105 on" in found[0].summary
    assert found[1].first_seen_ns > found[0].last_seen_ns + 300 * S


def test_a_suppress_rule_still_drops_every_hit() -> None:
    """A rule naming the detector for this server silences it, and counts what it dropped."""
    polls = [(k * S, (500, 105)) for k in range(1, 11)]
    rule = {"suppress": [{"detectors": ["process.*"], "server": "10.0.0.20"}]}
    eng, found = _values(_plant(polls), rule)
    assert found == [] and eng.suppressed == {KIND: 10}


def test_a_configured_severity_applies_to_every_folded_hit() -> None:
    """Raised to medium in the config, the finding is medium and carries a pcap slice."""
    polls = [(k * S, (500, 105)) for k in range(1, 11)]
    _eng, [f] = _values(_plant(polls), {"severity": {KIND: "medium"}})
    assert (f.count, f.severity) == (10, Severity.MEDIUM) and f.evidence.pcap


def test_tables_beyond_the_new_findings_limit_are_counted_as_dropped() -> None:
    """With one new finding per detector and window, the holding registers open the finding;
    the input registers, out of range as well, are dropped hit by hit, counted and
    reported as rate limited."""
    wire, conv = Wire(), Conversation(unit=1)
    conn = wire.connect(T0, "10.0.0.10", "10.0.0.20")
    for k in range(40):
        out = k >= 30  # learn 30 s of values 100-111, then 10 s far outside them
        regs = (900, 900) if out else (100 + k % 12, 100 + k % 12)
        wire.exchange(conn, T0 + (k + 1) * S, *conv.exchange(3, address=10, registers=regs))
        wire.exchange(conn, T0 + (k + 1) * S + S // 2,
                      *conv.exchange(4, address=10, registers=regs))
    _eng, findings = detect_frames(wire.sorted_frames(), learn_ns=LEARN,
                                   config=config_from_dict({"max_new_per_window": 1}))
    found = [f for f in findings if f.kind == KIND]
    assert [(f.count, f.evidence.function_code) for f in found] == [(10, 3)]
    [limited] = [f for f in findings if f.kind == "detect.rate-limited"]
    assert KIND in limited.summary and limited.count == 10


def test_two_blocks_of_one_table_fold_into_one_finding_showing_the_latest_answer() -> None:
    """Blocks 10-11 and 20-21 are polled in turn; after learning, both read out of range.
    One finding for the table counts every answer, and each revision shows the answer
    that came last before it, whichever block it was."""
    wire, conv = Wire(), Conversation(unit=1)
    conn = wire.connect(T0, "10.0.0.10", "10.0.0.20")
    for k in range(30):
        for j, address in enumerate((10, 20)):
            wire.exchange(conn, T0 + (k + 1) * S + j * S // 2,
                          *conv.exchange(3, address=address, registers=(100 + k % 12, 50)))
    for k in range(1, 151):
        for j, address in enumerate((10, 20)):
            wire.exchange(conn, T0 + LEARN + k * S + j * S // 2,
                          *conv.exchange(3, address=address, registers=(105, 700 + 2 * k + j)))
    eng, found = _values(wire)
    [f] = found
    assert f.count == 300
    assert (f.evidence.addresses, f.evidence.values) == ((21,), (1001,))
    revisions = [r for r in eng.findings.values() if r.kind == KIND]
    assert revisions == [f] and f.revision >= 3
    assert f.summary.startswith("holding register 21 reads 1001, outside ")
