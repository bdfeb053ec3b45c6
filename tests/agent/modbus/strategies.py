"""Hypothesis strategies for Modbus traffic, built on :class:`otsentry.agent.testing.Conversation`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from otsentry.agent.modbus import spec
from otsentry.agent.testing import Conversation, Exchange

__all__ = ["chunkings", "event_key", "exchanges", "streams", "u8", "u16"]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
_bits = st.lists(st.integers(0, 1), min_size=1, max_size=48)
_regs = st.lists(u16, min_size=1, max_size=16)
_records = st.lists(st.tuples(u16, u16, st.lists(u16, min_size=1, max_size=4)), min_size=1,
                    max_size=3)

#: Function code -> strategy of keyword fields accepted by ``Conversation.exchange``.
FIELDS: dict[int, st.SearchStrategy[dict[str, Any]]] = {
    1: st.fixed_dictionaries({"address": st.integers(0, 1000), "values": _bits}),
    2: st.fixed_dictionaries({"address": st.integers(0, 1000), "values": _bits}),
    3: st.fixed_dictionaries({"address": st.integers(0, 1000), "registers": _regs}),
    4: st.fixed_dictionaries({"address": st.integers(0, 1000), "registers": _regs}),
    5: st.fixed_dictionaries({"address": u16, "value": st.sampled_from([0xFF00, 0x0000])}),
    6: st.fixed_dictionaries({"address": u16, "value": u16}),
    7: st.fixed_dictionaries({"status": u8}),
    8: st.fixed_dictionaries({"sub_function": st.sampled_from(sorted(spec.DIAGNOSTIC_NAMES)),
                              "data": st.lists(u16, max_size=3).map(
                                  lambda w: b"".join(x.to_bytes(2, "big") for x in w))}),
    11: st.fixed_dictionaries({"status": st.sampled_from([0, 0xFFFF]), "event_count": u16}),
    12: st.fixed_dictionaries({"event_count": u16, "message_count": u16,
                               "events": st.binary(max_size=8)}),
    15: st.fixed_dictionaries({"address": st.integers(0, 1000), "values": _bits}),
    16: st.fixed_dictionaries({"address": st.integers(0, 1000), "registers": _regs}),
    17: st.fixed_dictionaries({"server_id": st.binary(max_size=16),
                               "run_indicator": st.booleans()}),
    20: st.fixed_dictionaries({"records": _records}),
    21: st.fixed_dictionaries({"records": _records}),
    22: st.fixed_dictionaries({"address": u16, "and_mask": u16, "or_mask": u16}),
    23: st.fixed_dictionaries({"read_address": st.integers(0, 1000), "registers": _regs,
                               "write_address": st.integers(0, 1000), "write_registers": _regs}),
    24: st.fixed_dictionaries({"address": u16, "registers": st.lists(u16, max_size=8)}),
    43: st.fixed_dictionaries({"read_code": st.integers(1, 4), "object_id": u8,
                               "objects": st.lists(st.tuples(u8, st.binary(max_size=12)),
                                                   max_size=4)}),
    90: st.fixed_dictionaries({"session": u8, "function": u8, "data": st.binary(max_size=8),
                               "response_data": st.binary(max_size=8)}),
}


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    """One valid request/response pair: any builder code, an exception, or a user-defined code."""
    tid, unit = draw(u16), draw(u8)
    conv = Conversation(unit=unit, first_tid=tid)
    kind = draw(st.sampled_from(["normal"] * 6 + ["exception", "user"]))
    if kind == "exception":
        fc = draw(st.sampled_from(sorted(FIELDS)))
        return conv.exception(fc, draw(st.sampled_from(sorted(spec.EXCEPTION_NAMES))),
                              **draw(FIELDS[fc]))
    if kind == "user":
        return conv.raw(draw(st.sampled_from(sorted(spec.USER_DEFINED))),
                        draw(st.binary(max_size=10)), draw(st.binary(max_size=10)))
    fc = draw(st.sampled_from(sorted(FIELDS)))
    return conv.exchange(fc, **draw(FIELDS[fc]))


@st.composite
def streams(draw: st.DrawFn, garbage: bool = False, max_items: int = 6) -> tuple[bytes, bytes]:
    """The client and server byte streams of several exchanges, optionally with junk between ADUs."""
    client, server = [], []
    for ex in draw(st.lists(exchanges(), min_size=1, max_size=max_items)):
        for out, adu in ((client, ex.request), (server, ex.response)):
            if garbage and draw(st.integers(0, 3)) == 0:
                out.append(draw(st.binary(min_size=1, max_size=24)))
            out.append(adu)
    return b"".join(client), b"".join(server)


def chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """Ways to cut ``data``: whole, halves, byte at a time, or random cut points."""
    n = len(data)
    fixed = [[data], [data[: n // 2], data[n // 2 :]], [data[i : i + 1] for i in range(n)]]
    cuts = st.lists(st.integers(0, n), max_size=12).map(
        lambda c: [data[a:b] for a, b in zip([0, *sorted(c)], [*sorted(c), n])])
    return st.sampled_from(fixed) | cuts


def event_key(e: object) -> tuple:
    """What must not depend on chunking: the event type and every field except ts and frame."""
    name = type(e).__name__
    if hasattr(e, "FIELDS"):
        return (name, e.tid, e.unit, tuple(getattr(e, f) for f in e.FIELDS), e.violations)
    slots = [s for s in type(e).__slots__ if s not in ("ts", "frame")]
    return (name, *(getattr(e, s) for s in slots))
