"""Transaction pairing: (tid, unit) keys, FIFO for reused ids, fallbacks, timeouts and bounds."""

from __future__ import annotations

import pytest

from otsentry.agent.modbus import decode_request, decode_response
from otsentry.agent.testing import request_pdu, response_pdu
from otsentry.agent.transactions import TransactionTable

S = 1_000_000_000


def req(fc: int = 3, tid: int = 1, unit: int = 1, ts: int = 0, **fields):
    return decode_request(request_pdu(fc, **fields), tid, unit, ts, 1)


def rsp(fc: int = 3, tid: int = 1, unit: int = 1, ts: int = 0, **fields):
    return decode_response(response_pdu(fc, **fields), tid, unit, ts, 2)


def exc(fc: int = 3, code: int = 2, tid: int = 1, unit: int = 1, ts: int = 0):
    return decode_response(bytes([fc | 0x80, code]), tid, unit, ts, 2)


@pytest.fixture(name="table")
def _table() -> TransactionTable:
    return TransactionTable("flow", timeout_ns=10 * S, max_pending=4)


class TestPairing:
    def test_by_tid_and_unit(self, table) -> None:
        """Responses pair with the request of the same (tid, unit), whatever the order."""
        out: list = []
        a, b, c = req(tid=1, ts=0), req(tid=2, ts=1), req(tid=1, unit=2, ts=2)
        for r in (a, b, c):
            table.request(r, out)
        table.response(rsp(tid=1, unit=2, ts=10), out)
        table.response(rsp(tid=2, ts=11), out)
        table.response(rsp(tid=1, ts=12), out)
        assert [(t.status, t.request) for t in out] == [("ok", c), ("ok", b), ("ok", a)]
        assert [t.latency_ns for t in out] == [8, 10, 12]
        assert all(t.flow == "flow" and t.violations == () for t in out)
        assert table.npending == 0

    def test_fifo_for_repeated_tid_zero(self, table) -> None:
        """Masters that always send tid 0 pair first in, first out."""
        out: list = []
        reqs = [req(tid=0, ts=i, address=10 * i) for i in range(3)]
        for r in reqs:
            table.request(r, out)
        for i in range(3):
            table.response(rsp(tid=0, ts=10 + i), out)
        assert [t.request.address for t in out] == [0, 10, 20]

    def test_exception_status(self, table) -> None:
        """An exception response gives status ``exception``."""
        out: list = []
        table.request(req(fc=16, registers=(1,)), out)
        table.response(exc(fc=16, ts=5), out)
        assert (out[0].status, out[0].fc, out[0].response.code) == ("exception", 16, 2)

    def test_function_mismatch(self, table) -> None:
        """A response with another function code still pairs, flagged function-mismatch."""
        out: list = []
        table.request(req(fc=3), out)
        table.response(rsp(fc=4), out)
        assert (out[0].status, out[0].violations) == ("ok", ("function-mismatch",))

    def test_transaction_id_mismatch_fallback(self, table) -> None:
        """A response whose tid matches nothing pairs with the oldest request of its unit and function."""
        out: list = []
        table.request(req(fc=3, tid=5, ts=0), out)
        table.request(req(fc=6, tid=6, ts=1, value=1), out)
        table.response(rsp(fc=6, tid=99, ts=3, value=1), out)
        assert (out[0].request.tid, out[0].status) == (6, "ok")
        assert out[0].violations == ("transaction-id-mismatch",)
        assert table.npending == 1

    def test_fallback_needs_same_unit(self, table) -> None:
        """The fallback never pairs across unit ids: the response stays unmatched."""
        out: list = []
        table.request(req(tid=5, unit=1), out)
        table.response(rsp(tid=6, unit=2), out)
        assert out == [] and table.npending == 1
        table.expire(0, out, everything=True)
        assert sorted(t.status for t in out) == ["unanswered", "unmatched"]
        assert all(t.request is None for t in out if t.status == "unmatched")


class TestUnansweredAndUnmatched:
    def test_unanswered_after_timeout(self, table) -> None:
        """A request older than the timeout is reported when a later request arrives."""
        out: list = []
        old = req(tid=1, ts=0)
        table.request(old, out)
        table.request(req(tid=2, ts=11 * S), out)
        assert [(t.status, t.request, t.response) for t in out] == [("unanswered", old, None)]
        assert table.npending == 1

    def test_expire_by_time(self, table) -> None:
        """expire(now) reports only requests older than the timeout."""
        out: list = []
        table.request(req(tid=1, ts=0), out)
        table.request(req(tid=2, ts=5 * S), out)
        table.expire(12 * S, out)
        assert [t.request.tid for t in out] == [1]

    def test_unanswered_at_end(self, table) -> None:
        """expire(everything=True) reports every pending request."""
        out: list = []
        for tid in (1, 2, 2):
            table.request(req(tid=tid, ts=tid), out)
        table.expire(3, out, everything=True)
        assert [(t.status, t.request.tid) for t in out] == [("unanswered", 1), ("unanswered", 2),
                                                            ("unanswered", 2)]
        assert table.npending == 0 and table.pending == {}

    def test_unmatched_response(self, table) -> None:
        """A response with no request is reported unmatched once it has waited the timeout."""
        out: list = []
        table.response(rsp(tid=9, ts=1), out)
        assert out == []
        table.request(req(tid=10, ts=1 + table.timeout_ns + 1), out)
        table.expire(1 + table.timeout_ns + 1, out)
        assert [(t.status, t.request, t.tid) for t in out] == [("unmatched", None, 9)]

    def test_late_request_claims_earlier_response(self, table) -> None:
        """A request decoded after its response (the other direction lagged) still pairs with it."""
        out: list = []
        table.response(rsp(tid=3, ts=20), out)
        table.request(req(tid=3, ts=10), out)
        assert [(t.status, t.latency_ns) for t in out] == [("ok", 10)]

    def test_duplicate_response(self, table) -> None:
        """A second response to an answered key is a duplicate and carries the first one."""
        out: list = []
        table.request(req(tid=4), out)
        first, second = rsp(tid=4, ts=1, registers=(1,)), rsp(tid=4, ts=2, registers=(2,))
        table.response(first, out)
        table.response(second, out)
        assert [t.status for t in out] == ["ok", "duplicate"]
        assert (out[1].response, out[1].previous) == (second, first)

    def test_pending_bound(self, table) -> None:
        """Past max_pending, the oldest request is reported unanswered and evicted."""
        out: list = []
        reqs = [req(tid=i, ts=i) for i in range(5)]
        for r in reqs:
            table.request(r, out)
        assert [(t.status, t.request, t.evicted) for t in out] == [("unanswered", reqs[0], True)]
        assert table.npending == 4
