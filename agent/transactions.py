"""Pair requests with responses into transactions, per connection.

Pairing key: (transaction id, unit id) within one flow ([TCP] §3.1.3: the
client picks the transaction id, the server copies it).  Each key holds its
pending requests first-in first-out, so masters that always send transaction id 0, or reuse
ids while pipelining, still pair in order.  A response whose function code
differs from its request's pairs anyway and carries ``function-mismatch``.

Outputs (all :class:`Transaction`, in a list the caller passes in):

- ``ok`` / ``exception`` / ``malformed``: a request and its response, with the latency
  (a malformed ADU whose header could be read pairs like any message);
- ``unanswered``: a request with no response within ``timeout_ns`` of capture
  time, at connection end, or pushed out of the bounded pending table;
- ``unmatched``: a response with no request, reported once it has waited
  ``timeout_ns`` (a request decoded late, e.g. while the decoder resyncs on a
  connection picked up midstream, can still claim it); ``duplicate`` at once
  when the same key was just answered (the previous response is kept).

Bounds: at most ``max_pending`` requests wait per flow; the oldest is then
reported unanswered with ``evicted`` set.
"""

from __future__ import annotations

from typing import Any, Final, Union

from otsentry.agent.modbus._events import Malformed, Message

__all__ = ["Transaction", "TransactionTable", "DEFAULT_TIMEOUT_NS", "DEFAULT_MAX_PENDING"]

DEFAULT_TIMEOUT_NS: Final = 10_000_000_000
DEFAULT_MAX_PENDING: Final = 256
_RECENT_ANSWERED: Final = 64
_MAX_ORPHANS: Final = 64

#: What pairs: a decoded message, or a malformed ADU whose header could be read.
Msg = Union[Message, Malformed]
#: Pairing key: (transaction id, unit id).
Key = tuple[Any, Any]


def _status(response: Msg) -> str:
    if isinstance(response, Malformed):
        return "malformed"
    return "exception" if response.is_exception else "ok"


class Transaction:
    """A request and its response (either may be missing), on one flow.

    Attributes:
        flow: the :class:`~otsentry.agent.flows.Flow` it belongs to.
        request: the request message, or None for an unmatched response.
        response: the response message, or None when unanswered.
        status: ``ok``, ``exception``, ``malformed`` (the response could not be decoded),
            ``unanswered``, ``unmatched`` or ``duplicate``.
        latency_ns: response time minus request time, or None.
        violations: transaction-level violations (``function-mismatch``...).
        previous: for ``duplicate``, the response that answered the key before.
        evicted: True when an unanswered request was pushed out of a full table.
        at_end: True when the input ended (end of capture) before the answer could come.
    """

    __slots__ = ("flow", "request", "response", "status", "latency_ns", "violations", "previous",
                 "evicted", "at_end")

    def __init__(self, flow: Any, request: Msg | None, response: Msg | None, status: str,
                 latency_ns: int | None = None, violations: tuple[str, ...] = (),
                 previous: Msg | None = None, evicted: bool = False, at_end: bool = False) -> None:
        self.flow = flow
        self.request = request
        self.response = response
        self.status = status
        self.latency_ns = latency_ns
        self.violations = violations
        self.previous = previous
        self.evicted = evicted
        self.at_end = at_end

    @property
    def first(self) -> Msg:
        """The earliest message of the transaction."""
        return self.request if self.request is not None else self.response  # type: ignore[return-value]

    @property
    def fc(self) -> Any:
        return self.first.fc

    @property
    def unit(self) -> Any:
        return self.first.unit

    @property
    def tid(self) -> Any:
        return self.first.tid

    def __repr__(self) -> str:
        return f"Transaction({self.status}, {self.request!r}, {self.response!r})"


class TransactionTable:
    """Pending requests of one flow, and the pairing logic.

    ``pending`` maps (tid, unit) to the waiting request, or to a list of them,
    oldest first, when a key is reused before it is answered (the rare case,
    kept off the hot path).

    Args:
        flow: the flow object stored in every transaction.
        timeout_ns: capture-time wait before a request counts as unanswered.
        max_pending: bound on waiting requests for this flow.
    """

    __slots__ = ("flow", "timeout_ns", "max_pending", "pending", "npending", "answered",
                 "oldest_ts", "orphans")

    def __init__(self, flow: Any, timeout_ns: int = DEFAULT_TIMEOUT_NS,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.flow = flow
        self.timeout_ns = timeout_ns
        self.max_pending = max_pending
        self.pending: dict[Key, Any] = {}
        self.npending = 0
        self.answered: dict[Key, Msg] = {}
        self.oldest_ts = 0
        #: Responses with no request yet, by key: the request may still come (the other
        #: direction can be decoded later, e.g. while the decoder resyncs midstream).
        self.orphans: dict[Key, Msg] = {}

    def request(self, msg: Msg, out: list) -> None:
        """Record a request; may emit unanswered transactions for expired or evicted ones."""
        if self.orphans and self._claim_orphan(msg, out):
            return
        if self.npending:
            if msg.ts - self.oldest_ts > self.timeout_ns:
                self.expire(msg.ts, out)
        else:
            self.oldest_ts = msg.ts
        key = (msg.tid, msg.unit)
        pending = self.pending
        cur = pending.get(key)
        if cur is None:
            pending[key] = msg
        elif type(cur) is list:
            cur.append(msg)
        else:
            pending[key] = [cur, msg]
        self.npending += 1
        if self.npending > self.max_pending:
            self._evict_oldest(out)

    def _take(self, key: Key) -> Msg | None:
        cur = self.pending.pop(key, None)
        if cur is None:
            return None
        self.npending -= 1
        if type(cur) is list:
            req = cur.pop(0)
            if cur:
                self.pending[key] = cur if len(cur) > 1 else cur[0]
            return req
        return cur

    def response(self, msg: Msg, out: list) -> None:
        """Pair a response with its request and emit the transaction."""
        key = (msg.tid, msg.unit)
        req = self._take(key) if key in self.pending else None
        if req is not None:
            viol: tuple[str, ...] = () if req.fc == msg.fc else ("function-mismatch",)
            if msg.ts < req.ts:
                viol += ("response-before-request",)
            answered = self.answered
            if len(answered) > _RECENT_ANSWERED:
                answered.clear()  # bounded; only recent keys matter for duplicates
            answered[key] = msg
            out.append(Transaction(self.flow, req, msg, _status(msg), msg.ts - req.ts, viol))
            return
        req = self._fifo_fallback(msg)
        if req is not None:
            out.append(Transaction(self.flow, req, msg, _status(msg), msg.ts - req.ts,
                                   ("transaction-id-mismatch",)))
            return
        prev = self.answered.get(key)
        if prev is not None and prev.fc == msg.fc:
            out.append(Transaction(self.flow, None, msg, "duplicate", None, (), prev))
            return
        if key in self.orphans or len(self.orphans) >= _MAX_ORPHANS:
            old = self.orphans.pop(key, None) or self.orphans.pop(next(iter(self.orphans)))
            out.append(Transaction(self.flow, None, old, "unmatched"))
        self.orphans[key] = msg

    def _claim_orphan(self, msg: Msg, out: list) -> bool:
        """Pair a late-decoded request with a response that arrived before it."""
        key = (msg.tid, msg.unit)
        rsp = self.orphans.get(key)
        if rsp is None or rsp.ts < msg.ts:
            return False
        del self.orphans[key]
        viol = () if rsp.fc == msg.fc else ("function-mismatch",)
        self.answered[key] = rsp
        out.append(Transaction(self.flow, msg, rsp, _status(rsp), rsp.ts - msg.ts, viol))
        return True

    def _expire_orphans(self, limit: int, everything: bool) -> list:
        gone = [m for m in self.orphans.values() if everything or m.ts < limit]
        for m in gone:
            del self.orphans[(m.tid, m.unit)]
        return [Transaction(self.flow, None, m, "unmatched") for m in gone]

    def _heads(self) -> list[tuple[Key, Msg]]:
        """(key, oldest waiting request) for every key."""
        return [(k, v[0] if type(v) is list else v) for k, v in self.pending.items()]

    def _fifo_fallback(self, msg: Msg) -> Msg | None:
        """The oldest pending request of the same unit and function, for servers that do
        not echo the transaction id (or masters that reuse it); None if there is none."""
        if not self.npending:
            return None
        best_key: Key | None = None
        best: Msg | None = None
        for key, head in self._heads():
            if (head.unit == msg.unit and head.fc == msg.fc and head.ts <= msg.ts
                    and (best is None or head.ts < best.ts)):
                best_key, best = key, head
        if best_key is None:
            return None
        return self._take(best_key)

    def expire(self, now: int, out: list, everything: bool = False, at_end: bool = False) -> None:
        """Report requests older than the timeout (all of them with ``everything``), and
        responses that waited that long for a request as unmatched.  ``at_end`` marks the
        unanswered ones as cut off by the end of the input."""
        limit = now - self.timeout_ns
        if self.orphans:
            out.extend(self._expire_orphans(limit, everything))
        if not self.npending:
            if everything:
                self.answered.clear()
            return
        oldest: int | None = None
        expired: list[Msg] = []
        for key, first in self._heads():
            head: Msg | None = first
            while head is not None and (everything or head.ts < limit):
                taken = self._take(key)
                if taken is not None:
                    expired.append(taken)
                head = self._head(key)
            if head is not None and (oldest is None or head.ts < oldest):
                oldest = head.ts
        expired.sort(key=lambda m: (m.ts, m.frame))  # reported in the order they were sent
        out.extend(Transaction(self.flow, m, None, "unanswered", at_end=at_end) for m in expired)
        self.oldest_ts = oldest or 0
        if everything:
            self.answered.clear()

    def _head(self, key: Key) -> Msg | None:
        cur = self.pending.get(key)
        return cur[0] if type(cur) is list else cur

    def _evict_oldest(self, out: list) -> None:
        key, _head = min(self._heads(), key=lambda kv: kv[1].ts)
        out.append(Transaction(self.flow, self._take(key), None, "unanswered", evicted=True))
