"""TCP stream reassembly, one :class:`TcpStream` per flow direction.

Sans-I/O: segments go in with their capture time and frame number; ordered
bytes, gaps and end-of-stream go out to a sink with ``receive(direction,
data, ts, frame)``, ``gap(direction, nbytes, ts, frame)`` and ``eof(direction,
ts, frame)`` (the Modbus :class:`~otsentry.agent.modbus.Decoder`).

Policies (documented for operators in docs/operator.md):

- Midstream pickup: a direction whose SYN was not captured starts at the
  first data segment seen.
- Retransmissions (data wholly before the next expected byte) are dropped.
  When they overlap the last delivered segment and their bytes differ, the
  first copy wins and an ``overlap-mismatch`` violation is recorded: a TCP
  overlap with different content is a known IDS-evasion technique.
- SPAN duplicates (the same segment mirrored twice: same sequence number,
  length and IPv4 id, within 200 ms, or identical bytes within 2 ms) are
  counted apart from retransmissions and dropped.
- Out-of-order segments wait, bounded to ``MAX_OOO_SEGMENTS`` segments,
  ``MAX_OOO_BYTES`` bytes and ``OOO_WAIT_NS`` of capture time per direction.
  When a bound is hit, or at FIN, RST or idle timeout, the hole is declared a
  gap and the Modbus layer resyncs after it.
- A segment with SYN+FIN or SYN+RST is reported (``invalid-tcp-flags``) and its
  FIN/RST are ignored, so a crafted segment cannot end the stream early.
- Sequence numbers compare modulo 2**32.
"""

from __future__ import annotations

from typing import Final, Protocol

__all__ = ["TcpStream", "ReassemblyStats", "StreamSink", "MAX_OOO_SEGMENTS", "MAX_OOO_BYTES",
           "OOO_WAIT_NS"]

_M: Final = 0xFFFFFFFF
MAX_OOO_SEGMENTS: Final = 32
MAX_OOO_BYTES: Final = 64 * 1024
OOO_WAIT_NS: Final = 2_000_000_000
SPAN_DUP_IPID_NS: Final = 200_000_000
SPAN_DUP_BYTES_NS: Final = 2_000_000


class StreamSink(Protocol):
    def receive(self, direction: int, data: bytes, ts: int, frame: int) -> None: ...
    def gap(self, direction: int, nbytes: int, ts: int, frame: int) -> None: ...
    def eof(self, direction: int, ts: int = 0, frame: int = 0) -> None: ...


_STATS_FIELDS: Final = ("segments", "retransmissions", "span_duplicates", "out_of_order",
                        "overlaps", "overlap_mismatches", "gaps", "gap_bytes", "ooo_dropped_bytes")


class ReassemblyStats:
    """Counters shared by every stream of a pipeline (all int)."""

    __slots__ = _STATS_FIELDS

    def __init__(self) -> None:
        self.segments = 0
        self.retransmissions = 0
        self.span_duplicates = 0
        self.out_of_order = 0
        self.overlaps = 0
        self.overlap_mismatches = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.ooo_dropped_bytes = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _STATS_FIELDS}


def _sdiff(a: int, b: int) -> int:
    """a - b as a signed 32-bit difference."""
    d = (a - b) & _M
    return d - 0x100000000 if d & 0x80000000 else d


class TcpStream:
    """One direction of a TCP connection.

    Args:
        direction: the direction number passed to the sink (0 client->server).
        sink: receives ordered bytes, gaps and end of stream.
        stats: counters shared across streams.
        violations: list the stream appends ``(kind, ts, frame, detail)`` to.
    """

    __slots__ = ("direction", "sink", "stats", "violations", "next_seq", "ooo", "ooo_bytes",
                 "fin_seq", "closed", "last_seq", "last_len", "last_ipid", "last_ts",
                 "last_payload", "syn_seen", "ooo_since")

    def __init__(self, direction: int, sink: StreamSink, stats: ReassemblyStats,
                 violations: list) -> None:
        self.direction = direction
        self.sink = sink
        self.stats = stats
        self.violations = violations
        self.next_seq: int | None = None
        self.ooo: dict[int, tuple[bytes, int, int]] = {}
        self.ooo_bytes = 0
        self.ooo_since = 0
        self.fin_seq: int | None = None
        self.closed = False
        self.syn_seen = False
        self.last_seq = -1
        self.last_len = 0
        self.last_ipid = -1
        self.last_ts = 0
        self.last_payload = b""

    def segment(self, seq: int, flags: int, payload: bytes, ts: int, frame: int,
                ip_id: int = -1) -> None:
        """Process one TCP segment of this direction (SYN/FIN/RST flags as on the wire)."""
        if self.closed:
            return
        if flags & 0x03 == 0x03 or flags & 0x06 == 0x06:
            # SYN with FIN or RST is illegal: report it, and do not let it end the stream
            # (a crafted segment must not blind the sensor to what follows).
            self.violations.append(("invalid-tcp-flags", ts, frame, self.direction))
            flags &= ~0x05
        if flags & 0x02:  # SYN
            if self.next_seq is None:
                self.next_seq = (seq + 1) & _M
            # A SYN captured after data was picked up midstream (reordering, or a stray
            # SYN) must not rewind the stream: only the first sequence space counts.
            self.syn_seen = True
            seq = (seq + 1) & _M
        n = len(payload)
        if n:
            nxt = self.next_seq
            if nxt is None:
                self.next_seq = nxt = seq
            if seq == nxt:
                # In-order data, the common case: deliver inline (this is the hot path).
                self.next_seq = (seq + n) & _M
                self.last_seq, self.last_len, self.last_ipid, self.last_ts = seq, n, ip_id, ts
                self.last_payload = payload
                self.stats.segments += 1
                self.sink.receive(self.direction, payload, ts, frame)
                if self.ooo:
                    self._drain(ts, frame)
            else:
                d = _sdiff(seq, nxt)
                if d < 0:
                    self._old(seq, d, payload, ts, frame, ip_id)
                else:
                    self._future(seq, payload, ts, frame)
        if flags & 0x01:  # FIN
            self.fin_seq = (seq + n) & _M
        if flags & 0x04:  # RST: the connection is gone, whatever is still missing
            self.close(ts, frame)
        elif self.fin_seq is not None and self.next_seq == self.fin_seq and not self.ooo:
            self.close(ts, frame)

    def _deliver(self, seq: int, payload: bytes, ts: int, frame: int, ip_id: int) -> None:
        self.next_seq = (seq + len(payload)) & _M
        self.last_seq, self.last_len, self.last_ipid, self.last_ts = seq, len(payload), ip_id, ts
        self.last_payload = payload
        self.stats.segments += 1
        self.sink.receive(self.direction, payload, ts, frame)

    def _old(self, seq: int, d: int, payload: bytes, ts: int, frame: int, ip_id: int) -> None:
        n = len(payload)
        if seq == self.last_seq and n == self.last_len and (
            (ip_id == self.last_ipid and ip_id > 0 and ts - self.last_ts <= SPAN_DUP_IPID_NS)
            or (ts - self.last_ts <= SPAN_DUP_BYTES_NS and payload == self.last_payload)
        ):
            self.stats.span_duplicates += 1
            return
        self._compare_overlap(seq, payload, ts, frame)
        if d + n <= 0:
            self.stats.retransmissions += 1
            return
        self.stats.overlaps += 1
        self._deliver((seq - d) & _M, payload[-d:], ts, frame, ip_id)
        if self.ooo:
            self._drain(ts, frame)

    def _compare_overlap(self, seq: int, payload: bytes, ts: int, frame: int) -> None:
        """Compare re-sent bytes with the last delivered segment where they overlap."""
        last = self.last_payload
        start = _sdiff(seq, self.last_seq)
        lo, hi = max(0, start), min(len(last), start + len(payload))
        if hi > lo and last[lo:hi] != payload[lo - start : hi - start]:
            self.stats.overlap_mismatches += 1
            self.violations.append(("overlap-mismatch", ts, frame, self.direction))

    def _future(self, seq: int, payload: bytes, ts: int, frame: int) -> None:
        old = self.ooo.get(seq)
        if old is not None:
            common = min(len(old[0]), len(payload))
            if old[0][:common] != payload[:common]:
                self.stats.overlap_mismatches += 1
                self.violations.append(("overlap-mismatch", ts, frame, self.direction))
            elif len(payload) > len(old[0]):
                # Re-packetized: the same bytes and more; keep the longer copy.
                self.ooo[seq] = (payload, old[1], old[2])
                self.ooo_bytes += len(payload) - len(old[0])
            self.stats.retransmissions += 1
            return
        if not self.ooo:
            self.ooo_since = ts
        self.ooo[seq] = (payload, ts, frame)
        self.ooo_bytes += len(payload)
        self.stats.out_of_order += 1
        if (len(self.ooo) > MAX_OOO_SEGMENTS or self.ooo_bytes > MAX_OOO_BYTES
                or ts - self.ooo_since > OOO_WAIT_NS):
            self.skip_gap(ts, frame)

    def _drain(self, ts: int, frame: int) -> None:
        ooo = self.ooo
        while ooo:
            nxt = self.next_seq
            item = ooo.pop(nxt, None)  # type: ignore[arg-type]
            if item is not None:
                self.ooo_bytes -= len(item[0])
                self._deliver(nxt, item[0], item[1], item[2], -1)  # type: ignore[arg-type]
                continue
            # Segments that start before next_seq but reach past it (overlaps) or lie wholly behind it.
            progressed = False
            for s in sorted(ooo, key=lambda k: _sdiff(k, nxt)):  # type: ignore[arg-type]
                d = _sdiff(s, nxt)  # type: ignore[arg-type]
                if d > 0:
                    break
                data, sts, sframe = ooo.pop(s)
                self.ooo_bytes -= len(data)
                if d + len(data) > 0:
                    self._deliver(nxt, data[-d:], sts, sframe, -1)  # type: ignore[arg-type]
                    progressed = True
                    break
            if not progressed:
                break
        if ooo:
            self.ooo_since = min(v[1] for v in ooo.values())

    def skip_gap(self, ts: int, frame: int) -> None:
        """Give up on the hole before the earliest waiting segment; report it as a gap."""
        if not self.ooo or self.next_seq is None:
            return
        nxt = self.next_seq
        first = min(self.ooo, key=lambda k: _sdiff(k, nxt))
        missing = _sdiff(first, nxt)
        self.stats.gaps += 1
        self.stats.gap_bytes += missing
        self.sink.gap(self.direction, missing, ts, frame)
        self.next_seq = first
        self._drain(ts, frame)

    def close(self, ts: int, frame: int) -> None:
        """End of stream (FIN reached, RST, idle timeout or end of capture): flush and EOF."""
        if self.closed:
            return
        while self.ooo:
            self.skip_gap(ts, frame)
        self.closed = True
        self.sink.eof(self.direction, ts, frame)
