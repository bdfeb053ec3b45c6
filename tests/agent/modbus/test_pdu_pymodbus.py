"""Differential tests: pymodbus encodes requests and responses, our decoder must read the same fields.

pymodbus 3 is the oracle for encoding; where it departs from the MODBUS
Application Protocol V1.1b3 ([AP]) the test says so and asserts the spec
behaviour instead.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu import bit_message as pm_bit
from pymodbus.pdu import diag_message as pm_diag
from pymodbus.pdu import exceptionresponse as pm_exc
from pymodbus.pdu import file_message as pm_file
from pymodbus.pdu import mei_message as pm_mei
from pymodbus.pdu import other_message as pm_other
from pymodbus.pdu import register_message as pm_reg

from otsentry.agent.modbus import (
    NEED_DATA,
    REQUEST,
    RESPONSE,
    Decoder,
    decode_request,
    decode_response,
    events,
    spec,
)
from otsentry.agent.testing import Conversation

FRAMER = FramerSocket(DecodePDU(False))

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
tids = u16
units = u8


def _decode_pair(req: object, rsp: object) -> tuple[events.Message, events.Message]:
    """Frame both pymodbus PDUs as ADUs, run them through one stream Decoder, return the messages."""
    dec = Decoder()
    dec.receive(REQUEST, FRAMER.buildFrame(req), 1, 1)
    dec.receive(RESPONSE, FRAMER.buildFrame(rsp), 2, 2)
    out = dec.take_events()
    assert dec.next_event() is NEED_DATA
    assert len(out) == 2, out
    for msg, pm in zip(out, (req, rsp)):
        assert isinstance(msg, events.Message), msg
        assert (msg.tid, msg.unit) == (pm.transaction_id, pm.dev_id)
    return out[0], out[1]


def _clean(*msgs: events.Message) -> None:
    for msg in msgs:
        assert msg.violations == (), msg


def _address_quantity(limit: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.integers(1, limit).flatmap(lambda q: st.tuples(st.integers(0, 0x10000 - q), st.just(q)))


class TestReadBits:
    @pytest.mark.parametrize(("fc", "req_cls", "rsp_cls"), [
        (1, pm_bit.ReadCoilsRequest, pm_bit.ReadCoilsResponse),
        (2, pm_bit.ReadDiscreteInputsRequest, pm_bit.ReadDiscreteInputsResponse),
    ])
    @given(aq=_address_quantity(spec.READ_BITS_MAX), tid=tids, unit=units, data=st.data())
    def test_fields(self, fc, req_cls, rsp_cls, aq, tid, unit, data) -> None:
        """Address, quantity and every bit value match pymodbus for FC 1 and 2."""
        address, qty = aq
        bits = data.draw(st.lists(st.booleans(), min_size=qty, max_size=qty))
        req = req_cls(address=address, count=qty, dev_id=unit, transaction_id=tid)
        rsp = rsp_cls(bits=bits, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.fc, ours_req.address, ours_req.quantity) == (fc, address, qty)
        assert ours_rsp.fc == fc
        assert ours_rsp.byte_count == (qty + 7) // 8
        assert ours_rsp.values(qty) == [int(b) for b in bits]
        _clean(ours_req, ours_rsp)


class TestReadRegisters:
    @pytest.mark.parametrize(("fc", "req_cls", "rsp_cls"), [
        (3, pm_reg.ReadHoldingRegistersRequest, pm_reg.ReadHoldingRegistersResponse),
        (4, pm_reg.ReadInputRegistersRequest, pm_reg.ReadInputRegistersResponse),
    ])
    @given(aq=_address_quantity(spec.READ_REGISTERS_MAX), tid=tids, unit=units, data=st.data())
    def test_fields(self, fc, req_cls, rsp_cls, aq, tid, unit, data) -> None:
        """Address, quantity and register values match pymodbus for FC 3 and 4."""
        address, qty = aq
        regs = data.draw(st.lists(u16, min_size=qty, max_size=qty))
        req = req_cls(address=address, count=qty, dev_id=unit, transaction_id=tid)
        rsp = rsp_cls(registers=regs, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.fc, ours_req.address, ours_req.quantity) == (fc, address, qty)
        assert (ours_rsp.fc, ours_rsp.byte_count, ours_rsp.registers) == (fc, 2 * qty, tuple(regs))
        _clean(ours_req, ours_rsp)


class TestSingleWrites:
    @given(address=u16, on=st.booleans(), tid=tids, unit=units)
    def test_write_single_coil(self, address, on, tid, unit) -> None:
        """FC 5 coil state is 0xFF00 for ON and 0x0000 for OFF, in the request and the echo."""
        req = pm_bit.WriteSingleCoilRequest(address=address, bits=[on], dev_id=unit, transaction_id=tid)
        rsp = pm_bit.WriteSingleCoilResponse(address=address, bits=[on], dev_id=unit,
                                             transaction_id=tid)
        for msg in _decode_pair(req, rsp):
            assert (msg.fc, msg.address, msg.value, msg.on) == (5, address, 0xFF00 if on else 0, on)
            _clean(msg)

    @given(address=u16, value=u16, tid=tids, unit=units)
    def test_write_single_register(self, address, value, tid, unit) -> None:
        """FC 6 address and value match pymodbus in the request and the echo."""
        req = pm_reg.WriteSingleRegisterRequest(address=address, registers=[value], dev_id=unit,
                                                transaction_id=tid)
        rsp = pm_reg.WriteSingleRegisterResponse(address=address, registers=[value], dev_id=unit,
                                                 transaction_id=tid)
        for msg in _decode_pair(req, rsp):
            assert (msg.fc, msg.address, msg.value) == (6, address, value)
            _clean(msg)


class TestSerialDiagnostics:
    @given(status=u8, tid=tids, unit=units)
    def test_read_exception_status(self, status, tid, unit) -> None:
        """FC 7 status byte matches pymodbus."""
        req = pm_other.ReadExceptionStatusRequest(dev_id=unit, transaction_id=tid)
        rsp = pm_other.ReadExceptionStatusResponse(status=status, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert isinstance(ours_req, events.ReadExceptionStatusRequest)
        assert ours_rsp.status == status

    @given(ready=st.booleans(), count=u16, tid=tids, unit=units)
    def test_get_comm_event_counter(self, ready, count, tid, unit) -> None:
        """FC 11 status (0x0000 ready, 0xFFFF busy) and event count match pymodbus."""
        req = pm_other.GetCommEventCounterRequest(dev_id=unit, transaction_id=tid)
        rsp = pm_other.GetCommEventCounterResponse(count=count, status=ready, dev_id=unit,
                                                   transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert isinstance(ours_req, events.GetCommEventCounterRequest)
        assert (ours_rsp.status, ours_rsp.event_count) == (0 if ready else 0xFFFF, count)

    @given(ready=st.booleans(), ev=u16, msgs=u16, log=st.lists(u8, max_size=64), tid=tids,
           unit=units)
    def test_get_comm_event_log(self, ready, ev, msgs, log, tid, unit) -> None:
        """FC 12 status, counters and event bytes match pymodbus."""
        req = pm_other.GetCommEventLogRequest(dev_id=unit, transaction_id=tid)
        rsp = pm_other.GetCommEventLogResponse(status=ready, message_count=msgs, event_count=ev,
                                               events=log, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert isinstance(ours_req, events.GetCommEventLogRequest)
        assert (ours_rsp.status, ours_rsp.event_count, ours_rsp.message_count) == (
            0 if ready else 0xFFFF, ev, msgs)
        assert ours_rsp.events == bytes(log)


_DIAG_PAIRS = sorted(
    {(c.sub_function_code, c.__name__.removesuffix("Request")) for c in vars(pm_diag).values()
     if isinstance(c, type) and issubclass(c, pm_diag.DiagnosticBase)
     and c.__name__.endswith("Request") and c is not pm_diag.DiagnosticBase}
)


class TestDiagnostics:
    @pytest.mark.parametrize(("sub", "name"), _DIAG_PAIRS, ids=[n for _s, n in _DIAG_PAIRS])
    @given(words=st.lists(u16, min_size=1, max_size=4), tid=tids, unit=units)
    def test_sub_functions(self, sub, name, words, tid, unit) -> None:
        """Every FC 8 sub-function pymodbus implements decodes to the same sub-function and data words."""
        req_cls = getattr(pm_diag, f"{name}Request")
        rsp_cls = getattr(pm_diag, f"{name}Response")
        req = req_cls(message=words[0] if sub == 0x15 else words, dev_id=unit, transaction_id=tid)
        if rsp_cls is pm_diag.ForceListenOnlyModeResponse:
            # [AP] §6.8.1 sub-function 04: the server never answers; pymodbus builds an empty echo.
            rsp = rsp_cls(dev_id=unit, transaction_id=tid)
        else:
            rsp = rsp_cls(message=words, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        for msg, pm in ((ours_req, req), (ours_rsp, rsp)):
            assert (msg.fc, msg.sub_function) == (8, sub)
            assert msg.data == pm.encode()[2:]
            assert msg.fields()["values"] == list(struct.unpack(f">{len(msg.data) // 2}H", msg.data))
        assert ours_req.fields()["values"] == (words[:1] if sub == 0x15 else words)

    @pytest.mark.parametrize(("sub", "ours"), [(0x13, "reserved-19"), (0x15, "unknown-21")])
    def test_sub_functions_outside_the_spec(self, sub, ours) -> None:
        """pymodbus implements sub-functions 19 and 21, which [AP] §6.8.1 reserves; we name them so."""
        assert any(s == sub for s, _n in _DIAG_PAIRS)
        req = pm_diag.DiagnosticBase(message=[0], dev_id=1, transaction_id=1)
        req.sub_function_code = sub
        msg = decode_request(FRAMER.buildFrame(req)[7:], 1, 1)
        assert msg.sub_function_name == ours

    @given(payload=st.binary(max_size=40), tid=tids, unit=units)
    def test_return_query_data_echo(self, payload, tid, unit) -> None:
        """FC 8/00 query data is kept byte for byte, whatever its length ([AP] §6.8.1: any data)."""
        req = pm_diag.ReturnQueryDataRequest(message=payload, dev_id=unit, transaction_id=tid)
        rsp = pm_diag.ReturnQueryDataResponse(message=payload, dev_id=unit, transaction_id=tid)
        for msg in _decode_pair(req, rsp):
            assert (msg.sub_function, msg.data) == (0, payload)
            assert msg.violations == ()


class TestMultipleWrites:
    @given(aq=_address_quantity(spec.WRITE_COILS_MAX), tid=tids, unit=units, data=st.data())
    def test_write_multiple_coils(self, aq, tid, unit, data) -> None:
        """FC 15 address, quantity and coil values match pymodbus."""
        address, qty = aq
        bits = data.draw(st.lists(st.booleans(), min_size=qty, max_size=qty))
        req = pm_bit.WriteMultipleCoilsRequest(address=address, bits=bits, dev_id=unit,
                                               transaction_id=tid)
        rsp = pm_bit.WriteMultipleCoilsResponse(address=address, count=qty, dev_id=unit,
                                                transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.address, ours_req.quantity) == (address, qty)
        assert ours_req.values() == [int(b) for b in bits]
        assert (ours_rsp.fc, ours_rsp.address, ours_rsp.quantity) == (15, address, qty)
        _clean(ours_req, ours_rsp)

    @given(qty=st.integers(spec.WRITE_COILS_MAX + 1, 1976))
    def test_write_multiple_coils_above_spec_limit(self, qty) -> None:
        """pymodbus encodes up to 2000 coils for FC 15; [AP] §6.11 allows 1968, so we flag the rest."""
        req = pm_bit.WriteMultipleCoilsRequest(address=0, bits=[True] * qty, dev_id=1,
                                               transaction_id=1)
        rsp = pm_bit.WriteMultipleCoilsResponse(address=0, count=qty, dev_id=1, transaction_id=1)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert ours_req.quantity == ours_rsp.quantity == qty
        assert ours_req.violations == ours_rsp.violations == ("quantity-out-of-range",)

    @given(qty=st.integers(1977, 2000))
    def test_write_multiple_coils_beyond_max_pdu(self, qty) -> None:
        """From 1977 coils pymodbus' FC 15 PDU exceeds 253 bytes ([AP] §4.1); we report a bad length."""
        req = pm_bit.WriteMultipleCoilsRequest(address=0, bits=[True] * qty, dev_id=1,
                                               transaction_id=1)
        frame = FRAMER.buildFrame(req)
        assert len(frame) - 7 > spec.MAX_PDU
        dec = Decoder()
        dec.receive(REQUEST, frame, 0, 1)
        dec.eof(REQUEST)
        out = dec.take_events()
        assert isinstance(out[0], events.Malformed)
        assert (out[0].reason, out[0].tid, out[0].unit) == ("bad-length", 1, 1)

    @given(aq=_address_quantity(spec.WRITE_REGISTERS_MAX), tid=tids, unit=units, data=st.data())
    def test_write_multiple_registers(self, aq, tid, unit, data) -> None:
        """FC 16 address, quantity and register values match pymodbus."""
        address, qty = aq
        regs = data.draw(st.lists(u16, min_size=qty, max_size=qty))
        req = pm_reg.WriteMultipleRegistersRequest(address=address, registers=regs, dev_id=unit,
                                                   transaction_id=tid)
        rsp = pm_reg.WriteMultipleRegistersResponse(address=address, count=qty, dev_id=unit,
                                                    transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.address, ours_req.quantity, ours_req.registers) == (address, qty,
                                                                            tuple(regs))
        assert (ours_rsp.fc, ours_rsp.address, ours_rsp.quantity) == (16, address, qty)
        _clean(ours_req, ours_rsp)

    @given(qty=st.integers(spec.WRITE_REGISTERS_MAX + 1, 127))
    def test_write_multiple_registers_above_spec_limit(self, qty) -> None:
        """pymodbus does not check the FC 16 quantity; [AP] §6.12 allows 123, so we flag the rest."""
        req = pm_reg.WriteMultipleRegistersRequest(address=0, registers=[1] * qty, dev_id=1,
                                                   transaction_id=1)
        ours = decode_request(FRAMER.buildFrame(req)[7:], 1, 1)
        assert ours.quantity == qty
        assert ours.violations == ("quantity-out-of-range",)


class TestReportServerId:
    @given(ident=st.binary(max_size=60), running=st.booleans(), tid=tids, unit=units)
    def test_fields(self, ident, running, tid, unit) -> None:
        """FC 17 server id bytes and run indicator match pymodbus."""
        req = pm_other.ReportDeviceIdRequest(dev_id=unit, transaction_id=tid)
        rsp = pm_other.ReportDeviceIdResponse(identifier=ident, status=running, dev_id=unit,
                                              transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert isinstance(ours_req, events.ReportServerIdRequest)
        assert (ours_rsp.server_id, ours_rsp.run_indicator) == (ident, running)


_records = st.lists(st.tuples(u16, u16, st.lists(u16, min_size=1, max_size=8)), min_size=1,
                    max_size=5)


class TestFileRecords:
    @given(records=_records, tid=tids, unit=units)
    def test_read_file_record(self, records, tid, unit) -> None:
        """FC 20 sub-requests (file, record, length) and returned record data match pymodbus."""
        req = pm_file.ReadFileRecordRequest(
            records=[pm_file.FileRecord(file_number=f, record_number=r, record_length=2 * len(v))
                     for f, r, v in records], dev_id=unit, transaction_id=tid)
        datas = [struct.pack(f">{len(v)}H", *v) for _f, _r, v in records]
        rsp = pm_file.ReadFileRecordResponse(
            records=[pm_file.FileRecord(record_data=d) for d in datas], dev_id=unit,
            transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert ours_req.records == tuple((6, f, r, len(v)) for f, r, v in records)
        assert ours_rsp.records == tuple((6, d) for d in datas)
        _clean(ours_req, ours_rsp)

    @given(records=_records, tid=tids, unit=units)
    def test_write_file_record(self, records, tid, unit) -> None:
        """FC 21 records (file, record, register data) match pymodbus in the request and the echo."""
        recs = [pm_file.FileRecord(file_number=f, record_number=r,
                                   record_data=struct.pack(f">{len(v)}H", *v))
                for f, r, v in records]
        req = pm_file.WriteFileRecordRequest(records=recs, dev_id=unit, transaction_id=tid)
        rsp = pm_file.WriteFileRecordResponse(records=recs, dev_id=unit, transaction_id=tid)
        for msg in _decode_pair(req, rsp):
            assert msg.records == tuple((6, f, r, tuple(v)) for f, r, v in records)
            _clean(msg)


class TestMaskAndFifo:
    @given(address=u16, and_mask=u16, or_mask=u16, tid=tids, unit=units)
    def test_mask_write_register(self, address, and_mask, or_mask, tid, unit) -> None:
        """FC 22 address and masks match pymodbus in the request and the echo."""
        kw = {"address": address, "and_mask": and_mask, "or_mask": or_mask, "dev_id": unit,
              "transaction_id": tid}
        pair = _decode_pair(pm_reg.MaskWriteRegisterRequest(**kw), pm_reg.MaskWriteRegisterResponse(**kw))
        for msg in pair:
            assert (msg.fc, msg.address, msg.and_mask, msg.or_mask) == (22, address, and_mask, or_mask)

    @given(address=u16, values=st.lists(u16, max_size=spec.FIFO_MAX), tid=tids, unit=units)
    def test_read_fifo_queue(self, address, values, tid, unit) -> None:
        """FC 24 pointer address and queued values match pymodbus."""
        req = pm_file.ReadFifoQueueRequest(address=address, dev_id=unit, transaction_id=tid)
        rsp = pm_file.ReadFifoQueueResponse(values=values, dev_id=unit, transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert ours_req.address == address
        assert ours_rsp.registers == tuple(values)
        _clean(ours_req, ours_rsp)


class TestReadWriteMultipleRegisters:
    @given(read=_address_quantity(spec.READ_REGISTERS_MAX),
           write=_address_quantity(spec.RW_WRITE_REGISTERS_MAX), tid=tids, unit=units,
           data=st.data())
    def test_fields(self, read, write, tid, unit, data) -> None:
        """FC 23 read and write parts and the registers read match pymodbus."""
        (raddr, rqty), (waddr, wqty) = read, write
        wregs = data.draw(st.lists(u16, min_size=wqty, max_size=wqty))
        rregs = data.draw(st.lists(u16, min_size=rqty, max_size=rqty))
        req = pm_reg.ReadWriteMultipleRegistersRequest(
            read_address=raddr, read_count=rqty, write_address=waddr, write_registers=wregs,
            dev_id=unit, transaction_id=tid)
        rsp = pm_reg.ReadWriteMultipleRegistersResponse(registers=rregs, dev_id=unit,
                                                        transaction_id=tid)
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.read_address, ours_req.read_quantity) == (raddr, rqty)
        assert (ours_req.write_address, ours_req.write_quantity) == (waddr, wqty)
        assert ours_req.registers == tuple(wregs)
        assert ours_rsp.registers == tuple(rregs)
        _clean(ours_req, ours_rsp)

    @given(wqty=st.integers(spec.RW_WRITE_REGISTERS_MAX + 1, 125))
    def test_write_part_above_spec_limit(self, wqty) -> None:
        """pymodbus decodes FC 23 write parts up to 125 registers; [AP] §6.17 allows 121, so we flag more."""
        pdu = struct.pack(">BHHHHB", 23, 0, 1, 0, wqty, 2 * wqty) + b"\x00\x01" * wqty
        pm = pm_reg.ReadWriteMultipleRegistersRequest()
        pm.decode(pdu[1:])  # pymodbus accepts it
        assert pm.write_count == wqty
        assert decode_request(pdu, 1, 1).violations == ("quantity-out-of-range",)


_objects = st.dictionaries(u8, st.binary(max_size=40) | st.lists(st.binary(max_size=20), min_size=1,
                                                                    max_size=3), max_size=10)


class TestDeviceIdentification:
    @given(read_code=st.integers(1, 4), object_id=u8, info=_objects, tid=tids, unit=units)
    def test_fields(self, read_code, object_id, info, tid, unit) -> None:
        """FC 43/14 read code, object id, objects, more-follows and next object id match pymodbus."""
        req = pm_mei.ReadDeviceInformationRequest(read_code=read_code, object_id=object_id,
                                                  dev_id=unit, transaction_id=tid)
        rsp = pm_mei.ReadDeviceInformationResponse(read_code=read_code, information=info,
                                                   dev_id=unit, transaction_id=tid)
        # pymodbus' encode() is not idempotent (it counts objects as it goes): build the frame once.
        ours_req, ours_rsp = _decode_pair(req, rsp)
        assert (ours_req.read_code, ours_req.object_id) == (read_code, object_id)
        flat = [(oid, v) for oid, vals in info.items()
                for v in (vals if isinstance(vals, list) else [vals])]
        assert ours_rsp.objects == tuple(flat[: len(ours_rsp.objects)])
        assert (ours_rsp.read_code, ours_rsp.conformity_level) == (read_code, rsp.conformity)
        assert ours_rsp.more_follows == (len(ours_rsp.objects) < len(flat))
        if ours_rsp.more_follows:
            assert ours_rsp.next_object_id == flat[len(ours_rsp.objects)][0]
        _clean(ours_req, ours_rsp)


class TestExceptionResponses:
    @given(fc=st.sampled_from(sorted(spec.PUBLIC)), code=st.sampled_from(sorted(spec.EXCEPTION_NAMES)),
           tid=tids, unit=units)
    def test_fields(self, fc, code, tid, unit) -> None:
        """An exception response carries the function code without 0x80 and the exception code."""
        rsp = pm_exc.ExceptionResponse(fc, code, device_id=unit, transaction=tid)
        dec = Decoder()
        dec.receive(RESPONSE, FRAMER.buildFrame(rsp), 0, 1)
        (msg,) = dec.take_events()
        assert isinstance(msg, events.ExceptionResponse)
        assert (msg.fc, msg.code, msg.tid, msg.unit) == (fc, code, tid, unit)
        assert msg.code_name == spec.EXCEPTION_NAMES[code]
        _clean(msg)

    @given(code=st.integers(0, 255).filter(lambda c: c not in spec.EXCEPTION_NAMES))
    def test_unknown_code(self, code) -> None:
        """Exception codes outside [AP] §7 are decoded and flagged."""
        rsp = pm_exc.ExceptionResponse(3, code, device_id=1, transaction=1)
        ours = decode_response(FRAMER.buildFrame(rsp)[7:], 1, 1)
        assert (ours.code, ours.violations) == (code, ("unknown-exception-code",))


class TestConversationAgainstPymodbus:
    """The Conversation helper builds the same bytes pymodbus does, so tests built on it are sound."""

    def test_read_holding_registers_bytes(self) -> None:
        """A Conversation FC 3 exchange is byte-identical to pymodbus' frames."""
        req, rsp = Conversation(unit=9, first_tid=77).exchange(3, address=10, registers=(1, 2, 3))
        assert req == FRAMER.buildFrame(pm_reg.ReadHoldingRegistersRequest(
            address=10, count=3, dev_id=9, transaction_id=77))
        assert rsp == FRAMER.buildFrame(pm_reg.ReadHoldingRegistersResponse(
            registers=[1, 2, 3], dev_id=9, transaction_id=77))

    def test_write_multiple_coils_bytes(self) -> None:
        """A Conversation FC 15 exchange is byte-identical to pymodbus' frames."""
        bits = [1, 0, 1, 1, 0, 0, 0, 0, 1, 1]
        req, rsp = Conversation(unit=1, first_tid=5).exchange(15, address=3, values=bits)
        assert req == FRAMER.buildFrame(pm_bit.WriteMultipleCoilsRequest(
            address=3, bits=[bool(b) for b in bits], dev_id=1, transaction_id=5))
        assert rsp == FRAMER.buildFrame(pm_bit.WriteMultipleCoilsResponse(
            address=3, count=10, dev_id=1, transaction_id=5))

    def test_device_identification_bytes(self) -> None:
        """A Conversation FC 43/14 response is byte-identical to pymodbus' frame."""
        objs = ((0, b"ACME"), (1, b"PLC-1"), (2, b"v1.2"))
        _req, rsp = Conversation(unit=1, first_tid=5).exchange(43, read_code=1, objects=objs,
                                                                conformity_level=0x83)
        assert rsp == FRAMER.buildFrame(pm_mei.ReadDeviceInformationResponse(
            read_code=1, information=dict(objs), dev_id=1, transaction_id=5))
