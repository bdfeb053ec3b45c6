"""Properties of the stream decoder: chunking invariance, only typed errors, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otsentry.agent.modbus import (
    NEED_DATA,
    REQUEST,
    RESPONSE,
    Decoder,
    Gap,
    Malformed,
    Message,
    NotModbus,
    decode_request,
    decode_response,
)
from otsentry.agent.testing import Conversation
from otsentry.common.errors import MalformedFrame
from tests.agent.modbus.strategies import chunkings, event_key, exchanges, streams

_MAX_ADU = 260


def _feed(dec: Decoder, direction: int, chunks: list[bytes], check_memory: bool = False) -> None:
    for i, chunk in enumerate(chunks):
        if chunk:
            dec.receive(direction, chunk, i, i + 1)
        if check_memory:
            assert len(dec._dirs[direction].buf) <= _MAX_ADU + len(chunk)


def _run(client: list[bytes], server: list[bytes], eof: bool = True) -> list[tuple]:
    """Feed the client chunks, then the server chunks; return the comparable events."""
    dec = Decoder()
    _feed(dec, REQUEST, client)
    _feed(dec, RESPONSE, server)
    if eof:
        dec.eof(REQUEST)
        dec.eof(RESPONSE)
    out = []
    while (e := dec.next_event()) is not NEED_DATA:
        out.append(event_key(e))
    return out


class TestChunkingInvariance:
    @given(data=st.data(), pair=streams())
    def test_valid_adus(self, data, pair) -> None:
        """Valid ADUs decode to the same events however the streams are cut."""
        client, server = pair
        whole = _run([client], [server])
        assert all(k[0] not in ("Malformed", "NotModbus") for k in whole), whole
        cut = _run(data.draw(chunkings(client)), data.draw(chunkings(server)))
        assert cut == whole

    @given(data=st.data(), pair=streams(garbage=True))
    def test_garbage_between_adus(self, data, pair) -> None:
        """Junk between ADUs gives the same Malformed events and resync points for any cut."""
        client, server = pair
        whole = _run([client], [server])
        cut = _run(data.draw(chunkings(client)), data.draw(chunkings(server)))
        assert cut == whole

    @given(data=st.data(), pair=streams(garbage=True), bytes_at_a_time=st.booleans())
    def test_garbage_between_adus_without_eof(self, data, pair, bytes_at_a_time) -> None:
        """Before end of stream, the events delivered so far do not depend on the cut either."""
        client, _server = pair
        whole = _run([client], [], eof=False)
        chunks = [client[i : i + 1] for i in range(len(client))] if bytes_at_a_time else (
            data.draw(chunkings(client)))
        assert _run(chunks, [], eof=False) == whole

    @given(data=st.data(), pair=streams(), hole=st.integers(1, 40), where=st.floats(0, 1))
    def test_gap(self, data, pair, hole, where) -> None:
        """A gap at a fixed stream offset gives the same events (and resync) for any cut."""
        client, _server = pair
        at = int(where * len(client))
        before, after = client[:at], client[at + hole :]

        def run(first: list[bytes], second: list[bytes]) -> list[tuple]:
            dec = Decoder()
            _feed(dec, REQUEST, first)
            dec.gap(REQUEST, hole, 0, 0)
            _feed(dec, REQUEST, second)
            dec.eof(REQUEST)
            return [event_key(e) for e in dec.take_events()]

        whole = run([before], [after])
        assert sum(k[0] == "Gap" for k in whole) == 1
        assert run(data.draw(chunkings(before)), data.draw(chunkings(after))) == whole

    @given(data=st.data(), ex=st.lists(exchanges(), min_size=2, max_size=5))
    def test_gap_on_adu_boundary_loses_nothing_after_it(self, data, ex) -> None:
        """After a gap that ends on an ADU boundary, every following ADU is decoded."""
        stream = b"".join(e.request for e in ex)
        lost = len(ex[0].request)
        dec = Decoder()
        dec.gap(REQUEST, lost, 0, 0)
        _feed(dec, REQUEST, data.draw(chunkings(stream[lost:])))
        dec.eof(REQUEST)
        got = dec.take_events()
        assert isinstance(got[0], Gap)
        assert [type(e) for e in got[1:]] == [type(e) for e in _decoded(ex[1:])]


def _decoded(ex: list) -> list[object]:
    dec = Decoder()
    dec.receive(REQUEST, b"".join(e.request for e in ex), 0, 1)
    dec.eof(REQUEST)
    return dec.take_events()


class TestOnlyTypedOutcomes:
    @given(data=st.data(), junk=st.binary(max_size=600), midstream=st.booleans())
    def test_random_bytes_never_raise(self, data, junk, midstream) -> None:
        """Random bytes become Malformed/NotModbus/messages; the decoder never raises."""
        dec = Decoder(midstream=midstream)
        for direction in (REQUEST, RESPONSE):
            _feed(dec, direction, data.draw(chunkings(junk)), check_memory=True)
            if data.draw(st.booleans()):
                dec.gap(direction, 10, 0, 0)
            dec.eof(direction)
        for e in dec.take_events():
            assert isinstance(e, (Message, Malformed, NotModbus, Gap)), e

    @given(junk=st.binary(max_size=300))
    def test_random_datagrams_never_raise(self, junk) -> None:
        """Random UDP payloads become events; the decoder never raises."""
        dec = Decoder()
        dec.datagram(REQUEST, junk, 0, 1)
        dec.datagram(RESPONSE, junk, 0, 2)
        for e in dec.take_events():
            assert isinstance(e, (Message, Malformed, NotModbus)), e

    @pytest.mark.parametrize("decode", [decode_request, decode_response])
    @given(pdu=st.binary(max_size=260))
    def test_pdu_decoders_raise_only_malformed_frame(self, decode, pdu) -> None:
        """decode_request/decode_response on random bytes return a message or raise MalformedFrame."""
        try:
            msg = decode(pdu, 1, 1)
        except MalformedFrame as exc:
            assert exc.reason and 0 <= exc.offset <= max(len(pdu), 1)
        else:
            assert isinstance(msg, Message)
            msg.fields()  # every field renders for output


class TestMemoryBound:
    @given(data=st.data(), pair=streams(garbage=True))
    def test_buffer_bounded(self, data, pair) -> None:
        """At most one partial ADU (260 bytes) plus one receive is buffered per direction."""
        client, server = pair
        dec = Decoder(midstream=data.draw(st.booleans()))
        _feed(dec, REQUEST, data.draw(chunkings(client)), check_memory=True)
        _feed(dec, RESPONSE, data.draw(chunkings(server)), check_memory=True)

    def test_stalled_length_does_not_grow_the_buffer(self) -> None:
        """A header promising 254 bytes that never come keeps at most 260 bytes buffered."""
        dec = Decoder()
        dec.receive(REQUEST, b"\x00\x01\x00\x00\x00\xfe\x01\x03", 0, 1)
        for i in range(300):
            dec.receive(REQUEST, b"\x00", i, i + 2)
            assert len(dec._dirs[REQUEST].buf) <= _MAX_ADU + 1


def _events_of(chunks: list[bytes], gap_first: int = 0) -> list[tuple]:
    dec = Decoder()
    if gap_first:
        dec.gap(REQUEST, gap_first, 0, 0)
    _feed(dec, REQUEST, chunks)
    dec.eof(REQUEST)
    return [event_key(e) for e in dec.take_events()]


class TestChunkingEdgeCases:
    def test_bad_header_evidence_is_chunking_invariant(self) -> None:
        """The evidence of a bad header is the same whole and byte at a time."""
        good = Conversation().exchange(3, registers=(1, 2)).request
        stream = good + b"\x00\x07\x00\x09\x00\x06\x01\x03\x00\x00\x00\x01" + good
        assert _events_of([stream]) == _events_of([stream[i : i + 1] for i in range(len(stream))])

    def test_split_first_adu_is_not_rtu(self) -> None:
        """An MBAP ADU split after its first four bytes decodes as it does whole."""
        adu = Conversation(first_tid=0xFFFF).exchange(3, registers=(1, 2)).request
        assert _events_of([adu[:4], adu[4:]]) == _events_of([adu])

    def test_no_rtu_detection_after_a_gap(self) -> None:
        """After a gap the decoder resyncs on MBAP headers; a segment after the hole is not tested as RTU."""
        ex = Conversation(first_tid=0xFFFF)
        stream = ex.exchange(1).request + ex.exchange(1).request
        expected = _events_of([stream], gap_first=12)
        assert [k[0] for k in expected] == ["Gap", "ReadCoilsRequest", "ReadCoilsRequest"]
        assert _events_of([stream[:4], stream[4:]], gap_first=12) == expected
