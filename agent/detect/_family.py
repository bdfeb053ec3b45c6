"""The contract of a detector family: entries, hooks by table, knobs.

A family is a class whose class attributes say which inputs it wants; the
engine binds them into dispatch tables (STYLE rule 4), so adding a detector
never adds a branch to the hot path:

- ``REQUESTS``: function code -> method name, called with ``(msg, flow)`` for
  every request message of that code; ``"request"`` (the :meth:`Family.request` override)
  is called natively, with no lookup or argument parsing;
- ``RESPONSES``: likewise for responses (exceptions included, under their code);
- ``EVENTS``: event KIND (``malformed``, ``not-modbus``, ``violation``, ``gap``)
  -> method name, called with ``(event, flow)``;
- ``STATUSES``: transaction status -> method name, called with ``(tx)``;
- ``EVERY_TX``: method name called with ``(tx)`` for every transaction; ``"tx"`` (the
  :meth:`Family.tx` override) is called natively, with no lookup or argument parsing, and
  is also handed the transaction's request and response as decoded messages;
- ``NEW_FLOW``: method name called with ``(flow, ts)`` the first time a flow is seen;
- ``NEW_END``: method name called with ``(flow, ts)`` whenever a frame from a further end of
  the flow has been seen (``flow.seen_ends`` grew), so that end's own link details are known;
- ``TICK``: method name called with ``(ts)`` once a second of capture time;
- ``CHANGES``: inventory change kind -> method name, called with ``(change)`` for each
  change the inventory makes (when the engine listens to one: ``Engine.inventory_change``).

``MODES`` says when the hooks run: ``plain`` (no baseline), ``learning``,
``protect``.  Knobs are read from ``self.knob(entry_id, name)``: the config's
value, else the catalogue default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from otsentry.agent.detect._entry import Entry
from otsentry.agent.detect._state import BoundedMap
from otsentry.agent.modbus._events import Malformed

if TYPE_CHECKING:
    from otsentry.agent.detect._engine import Engine
    from otsentry.agent.modbus._events import Message
    from otsentry.agent.transactions import Transaction

__all__ = ["Family", "ALL_MODES", "decoded", "first_of"]

ALL_MODES = frozenset({"plain", "learning", "protect"})


class Family:
    """Base of every detector family (see the module docstring)."""

    ENTRIES: ClassVar[tuple[Entry, ...]] = ()
    MODES: ClassVar[frozenset[str]] = ALL_MODES
    REQUESTS: ClassVar[dict[int, str]] = {}
    RESPONSES: ClassVar[dict[int, str]] = {}
    EVENTS: ClassVar[dict[str, str]] = {}
    STATUSES: ClassVar[dict[str, str]] = {}
    EVERY_TX: ClassVar[str | None] = None
    NEW_FLOW: ClassVar[str | None] = None
    NEW_END: ClassVar[str | None] = None
    TICK: ClassVar[str | None] = None
    CHANGES: ClassVar[dict[str, str]] = {}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: the next family the engine calls :meth:`tx` of (set by the engine's dispatch)
        self.next_tx: Family | None = None
        self.report = engine.report
        self._knobs: dict[str, dict[str, Any]] = {
            e.id: {**{k: v.default for k, v in e.knobs.items()}, **engine.config.knobs.get(e.id, {})}
            for e in self.ENTRIES}

    def tx(self, tx: Transaction, req: Message | None, rsp: Message | None) -> None:
        """Every transaction, when ``EVERY_TX`` is ``"tx"`` (overridden by such families).

        ``req`` and ``rsp`` are ``tx.request`` and ``tx.response`` when they are decoded
        messages, None when missing or malformed (the engine narrows them once, so each
        family reads their fields natively).
        """

    def request(self, msg: Any, flow: Any) -> None:
        """Every request of a function code ``REQUESTS`` maps to ``"request"`` (overridden
        by such families)."""

    def requests(self) -> dict[int, str]:
        """``REQUESTS`` as the engine binds it (a family may switch its hooks off)."""
        return self.REQUESTS

    def knob(self, entry_id: str, name: str) -> Any:
        """The value of knob ``name`` of detector ``entry_id``."""
        return self._knobs[entry_id][name]

    def table(self, name: str) -> BoundedMap:
        """A new bounded per-key table, registered with the engine for eviction reports."""
        m: BoundedMap = BoundedMap(self.engine.config.max_keys, f"{type(self).__name__}.{name}")
        self.engine.tables.append(m)
        return m


def decoded(msg: Message | Malformed | None) -> Message | None:
    """``msg`` when it is a decoded message, None when it is missing or malformed.

    Narrowed once per transaction (a malformed ADU is told by its exact class, and the
    cast to :class:`Message` is checked once), so what reads the fields reads them natively.
    """
    return None if msg is None or isinstance(msg, Malformed) else msg


def first_of(tx: Transaction, req: Message | None, rsp: Message | None) -> Message | None:
    """``tx.first`` when it is a decoded message (``req`` and ``rsp`` as :meth:`Family.tx`
    has them), None when it is a malformed one."""
    if req is not None:
        return req
    return rsp if tx.request is None else None
