"""Spec limits and violations of the PDU decoders ([AP] = MODBUS Application Protocol V1.1b3)."""

from __future__ import annotations

import json
import struct

import pytest

from otsentry.agent.modbus import decode_request, decode_response, events, spec
from otsentry.agent.testing import request_pdu, response_pdu
from otsentry.common.errors import MalformedFrame


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (pdu hex, expected violations) for requests that stay decodable.
REQUEST_VIOLATIONS = [
    # FC 1/2: 1..2000 bits; FC 3/4: 1..125 registers ([AP] §6.1-6.4).
    pytest.param("01 0000 07d0", (), id="fc1-2000-ok"),
    pytest.param("01 0000 07d1", ("quantity-out-of-range",), id="fc1-2001"),
    pytest.param("02 0000 0000", ("quantity-out-of-range",), id="fc2-zero"),
    pytest.param("03 0000 007d", (), id="fc3-125-ok"),
    pytest.param("03 0000 007e", ("quantity-out-of-range",), id="fc3-126"),
    pytest.param("04 0000 0000", ("quantity-out-of-range",), id="fc4-zero"),
    pytest.param("03 ffff 0002", ("address-out-of-range",), id="fc3-past-65535"),
    pytest.param("03 ffff 0001", (), id="fc3-last-address-ok"),
    # FC 5: only 0xFF00 and 0x0000 ([AP] §6.5).
    pytest.param("05 0001 ff00", (), id="fc5-on"),
    pytest.param("05 0001 0000", (), id="fc5-off"),
    pytest.param("05 0001 0001", ("bad-coil-value",), id="fc5-0001"),
    pytest.param("05 0001 00ff", ("bad-coil-value",), id="fc5-00ff"),
    # FC 15: 1..0x7B0 coils, byte count = ceil(quantity / 8) ([AP] §6.11).
    pytest.param("0f 0000 07b0 f6" + "ff" * 246, (), id="fc15-1968-ok"),
    pytest.param("0f 0000 07b1 f7" + "ff" * 247, ("quantity-out-of-range",), id="fc15-1969"),
    pytest.param("0f 0000 000a 01 03", ("byte-count-quantity-mismatch",), id="fc15-count-short"),
    pytest.param("0f 0000 0000 00", ("quantity-out-of-range",), id="fc15-zero"),
    # FC 16: 1..123 registers, byte count = 2 x quantity ([AP] §6.12).
    pytest.param("10 0000 007b f6" + "0001" * 123, (), id="fc16-123-ok"),
    pytest.param("10 0000 007c f8" + "0001" * 124, ("quantity-out-of-range",), id="fc16-124"),
    pytest.param("10 0000 0002 02 0001", ("byte-count-quantity-mismatch",), id="fc16-count-short"),
    pytest.param("10 0000 0002 03 000100",
                 ("byte-count-quantity-mismatch", "odd-byte-count"), id="fc16-odd-count"),
    # FC 23: read 1..125, write 1..121 ([AP] §6.17).
    pytest.param("17 0000 007d 0000 0079 f2" + "0001" * 121, (), id="fc23-125-121-ok"),
    pytest.param("17 0000 007e 0000 0001 02 0001", ("quantity-out-of-range",), id="fc23-read-126"),
    pytest.param("17 0000 0001 0000 007a f4" + "0001" * 122, ("quantity-out-of-range",),
                 id="fc23-write-122"),
    pytest.param("17 0000 0001 0000 0002 02 0001", ("byte-count-quantity-mismatch",),
                 id="fc23-count-mismatch"),
    # FC 20: reference type 6, byte count 0x07..0xF5 ([AP] §6.14).
    pytest.param("14 07 05 0001 0000 0001", ("bad-reference-type",), id="fc20-ref-type"),
    pytest.param("14 00", ("byte-count-out-of-range",), id="fc20-no-sub-request"),
    # FC 43: read device id code 1..4; MEI 13 is CANopen, others unknown ([AP] §6.19-6.21).
    pytest.param("2b 0e 05 00", ("bad-read-device-id-code",), id="fc43-read-code-5"),
    pytest.param("2b 0d 0102", (), id="fc43-canopen"),
    pytest.param("2b 0f 0102", ("unknown-mei-type",), id="fc43-mei-15"),
    # FC 8: data words ([AP] §6.8).
    pytest.param("08 0001 a5", ("odd-data-length",), id="fc8-odd-data"),
    pytest.param("08 0000 a5", (), id="fc8-echo-any-data"),
    # Codes outside the public set ([AP] §5, Annex A).
    pytest.param("41 aabb", (), id="user-defined-65"),
    pytest.param("6e", (), id="user-defined-110"),
    pytest.param("09", ("reserved-function-code",), id="reserved-9"),
    pytest.param("7f 00", ("reserved-function-code",), id="reserved-127"),
    pytest.param("00", ("unassigned-function-code",), id="unassigned-0"),
    pytest.param("32", ("unassigned-function-code",), id="unassigned-50"),
    pytest.param("83 0000 0001", ("exception-bit-in-request",), id="exception-bit-in-request"),
]

# (pdu hex, reason) for requests that cannot be decoded.
REQUEST_MALFORMED = [
    pytest.param("", "empty-pdu", id="empty"),
    pytest.param("03 0000", "short-pdu", id="fc3-short"),
    pytest.param("03 0000 0001 00", "bad-pdu-length", id="fc3-long"),
    pytest.param("05 0000 ff", "short-pdu", id="fc5-short"),
    pytest.param("06 0000 0001 02", "bad-pdu-length", id="fc6-long"),
    pytest.param("07 00", "bad-pdu-length", id="fc7-with-data"),
    pytest.param("08 00", "short-pdu", id="fc8-no-sub-function"),
    pytest.param("0f 0000 0008 02 ff", "byte-count-mismatch", id="fc15-count-past-end"),
    pytest.param("0f 0000 0008", "short-pdu", id="fc15-no-count"),
    pytest.param("10 0000 0001 02 000100", "byte-count-mismatch", id="fc16-trailing"),
    pytest.param("14 08 06 0001 0000 0001 00", "bad-sub-request-length", id="fc20-sub-not-7"),
    pytest.param("15 09 06 0001 0000 0002 0001", "sub-request-overrun", id="fc21-overrun"),
    pytest.param("15 03 06 0001", "short-sub-request", id="fc21-short-sub"),
    pytest.param("16 0000 ffff", "short-pdu", id="fc22-short"),
    pytest.param("17 0000 0001 0000 0001", "short-pdu", id="fc23-short"),
    pytest.param("18", "short-pdu", id="fc24-short"),
    pytest.param("2b", "short-pdu", id="fc43-no-mei"),
    pytest.param("2b 0e 01", "short-pdu", id="fc43-14-short"),
    pytest.param("5a 00", "short-pdu", id="fc90-short"),
]

RESPONSE_VIOLATIONS = [
    pytest.param("05 0001 1234", ("bad-coil-value",), id="fc5-echo-bad-value"),
    pytest.param("0f 0000 07b1", ("quantity-out-of-range",), id="fc15-1969"),
    pytest.param("10 0000 007c", ("quantity-out-of-range",), id="fc16-124"),
    pytest.param("10 fff0 0020", ("address-out-of-range",), id="fc16-past-65535"),
    pytest.param("14 04 03 07 0001", ("bad-reference-type",), id="fc20-ref-type"),
    pytest.param("18 0042 0020" + "0001" * 32, ("fifo-count-out-of-range",), id="fc24-32-queued"),
    pytest.param("2b 0e 01 83 01 00 01 00 01 41", ("bad-more-follows",), id="fc43-more-follows-1"),
    pytest.param("2b 0e 01 83 00 00 01 00 01 41 ff", ("trailing-bytes",), id="fc43-trailing"),
    pytest.param("83 0c", ("unknown-exception-code",), id="exception-code-12"),
    pytest.param("5b 00", ("reserved-function-code",), id="reserved-91"),
    pytest.param("00", ("unassigned-function-code",), id="unassigned-0"),
]

RESPONSE_MALFORMED = [
    pytest.param("", "empty-pdu", id="empty"),
    pytest.param("03", "short-pdu", id="fc3-no-count"),
    pytest.param("03 03 000102", "odd-byte-count", id="fc3-odd-count"),
    pytest.param("04 04 0001", "byte-count-mismatch", id="fc4-count-past-end"),
    pytest.param("03 02 000102", "byte-count-mismatch", id="fc3-trailing"),
    pytest.param("17 01 00", "odd-byte-count", id="fc23-odd-count"),
    pytest.param("01 02 ff", "byte-count-mismatch", id="fc1-count-past-end"),
    pytest.param("07", "short-pdu", id="fc7-no-status"),
    pytest.param("0b 0000", "short-pdu", id="fc11-short"),
    pytest.param("0c 04 0000 0000", "short-event-log", id="fc12-count-below-6"),
    pytest.param("11 05 41", "byte-count-mismatch", id="fc17-count-past-end"),
    pytest.param("14 04 05 06 0001", "sub-response-overrun", id="fc20-overrun"),
    pytest.param("14 02 00 06", "sub-response-overrun", id="fc20-zero-length"),
    pytest.param("18 0004 0002 0001", "byte-count-mismatch", id="fc24-count-mismatch"),
    pytest.param("18 0002", "short-pdu", id="fc24-short"),
    pytest.param("2b 0e 01 83 00 00 02 00 01 41", "device-id-object-overrun", id="fc43-missing-obj"),
    pytest.param("2b 0e 01 83 00 00 01 00 05 41", "device-id-object-overrun", id="fc43-obj-overrun"),
    pytest.param("2b 0e 01 83", "short-pdu", id="fc43-short-header"),
    pytest.param("83", "short-pdu", id="exception-no-code"),
    pytest.param("83 02 00", "bad-pdu-length", id="exception-trailing"),
    pytest.param("5a 00", "short-pdu", id="fc90-short"),
]


class TestRequestLimits:
    @pytest.mark.parametrize(("pdu", "violations"), REQUEST_VIOLATIONS)
    def test_violations(self, pdu, violations) -> None:
        """Requests that break a spec limit but stay decodable list it in ``violations``."""
        msg = decode_request(_h(pdu), 7, 9)
        assert isinstance(msg, events.Request)
        assert (msg.tid, msg.unit) == (7, 9)
        assert msg.violations == violations

    @pytest.mark.parametrize(("pdu", "reason"), REQUEST_MALFORMED)
    def test_malformed(self, pdu, reason) -> None:
        """Requests whose structure is inconsistent raise MalformedFrame with a reason and evidence."""
        with pytest.raises(MalformedFrame) as info:
            decode_request(_h(pdu), 1, 1)
        assert info.value.reason == reason
        assert info.value.evidence == _h(pdu)
        assert 0 <= info.value.offset <= len(_h(pdu))


class TestResponseLimits:
    @pytest.mark.parametrize(("pdu", "violations"), RESPONSE_VIOLATIONS)
    def test_violations(self, pdu, violations) -> None:
        """Responses that break a spec limit but stay decodable list it in ``violations``."""
        msg = decode_response(_h(pdu), 7, 9)
        assert isinstance(msg, events.Response)
        assert msg.violations == violations

    @pytest.mark.parametrize(("pdu", "reason"), RESPONSE_MALFORMED)
    def test_malformed(self, pdu, reason) -> None:
        """Responses whose structure is inconsistent raise MalformedFrame with a reason and evidence."""
        with pytest.raises(MalformedFrame) as info:
            decode_response(_h(pdu), 1, 1)
        assert info.value.reason == reason
        assert info.value.evidence == _h(pdu)


class TestEveryBuilderIsClean:
    @pytest.mark.parametrize("fc", sorted({1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22,
                                           23, 24, 43, 90}))
    def test_default_exchange(self, fc) -> None:
        """Each function code's default request and response decode to its classes, without violations."""
        req, rsp = decode_request(request_pdu(fc), 1, 1), decode_response(response_pdu(fc), 1, 1)
        assert (req.fc, rsp.fc, req.is_request, rsp.is_request) == (fc, fc, True, False)
        assert req.violations == rsp.violations == ()
        assert req.name == rsp.name == spec.function_name(fc)


class TestRawCodes:
    @pytest.mark.parametrize("fc", sorted(spec.USER_DEFINED))
    def test_user_defined_kept_raw(self, fc) -> None:
        """User-defined codes (65-72, 100-110) are kept raw, with their code and data, unflagged."""
        for decode, cls in ((decode_request, events.RawRequest), (decode_response, events.RawResponse)):
            msg = decode(bytes([fc]) + b"\x01\x02", 1, 1)
            assert type(msg) is cls
            assert (msg.fc, msg.data, msg.function_class, msg.violations) == (
                fc, b"\x01\x02", "user-defined", ())
            assert msg.name == f"user-defined-{fc}"

    @pytest.mark.parametrize("fc", sorted(spec.RESERVED - {90}))
    def test_reserved_kept_raw_and_flagged(self, fc) -> None:
        """Reserved codes are kept raw with their code and flagged ``reserved-function-code``."""
        for decode in (decode_request, decode_response):
            msg = decode(bytes([fc]) + b"\xaa", 1, 1)
            assert (msg.fc, msg.data, msg.function_class) == (fc, b"\xaa", "reserved")
            assert msg.violations == ("reserved-function-code",)
            assert msg.fields() == {"fc": fc, "data": "aa"}


class TestUmas:
    def test_request_fields(self) -> None:
        """An FC 90 request gives the UMAS session, function byte and data."""
        msg = decode_request(_h("5a 07 40 ff00"), 1, 1)
        assert isinstance(msg, events.UmasRequest)
        assert (msg.session, msg.function, msg.data, msg.violations) == (7, 0x40, b"\xff\x00", ())
        assert msg.name == "umas"

    def test_response_fields(self) -> None:
        """An FC 90 response gives the session, the status (0xFE ok, 0xFD error) and data."""
        msg = decode_response(_h("5a 07 fd 0102"), 1, 1)
        assert isinstance(msg, events.UmasResponse)
        assert (msg.session, msg.status, msg.data) == (7, 0xFD, b"\x01\x02")

    def test_exception(self) -> None:
        """0xDA is an exception response to FC 90."""
        msg = decode_response(_h("da 01"), 1, 1)
        assert isinstance(msg, events.ExceptionResponse)
        assert (msg.fc, msg.code) == (90, 1)


class TestFieldRendering:
    def test_coils_response_values(self) -> None:
        """Coil bytes unpack LSB first ([AP] §6.1) and trim to the request's quantity."""
        msg = decode_response(_h("01 02 cd 01"), 1, 1)
        assert msg.values(10) == [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]
        assert msg.fields()["byte_count"] == 2

    def test_report_server_id(self) -> None:
        """FC 17 splits the server id from a trailing run indicator and renders ASCII ids as text."""
        msg = decode_response(_h("11 05 504c43 31 ff"), 1, 1)
        assert msg.fields() == {"server_id": "504c4331", "server_id_text": "PLC1",
                                "run_indicator": True}

    def test_device_id_object_names(self) -> None:
        """FC 43/14 objects are named per [AP] §6.21; private ones by id."""
        msg = decode_response(_h("2b 0e 03 83 00 00 03 00 02 4142 05 01 5a 81 01 58"), 1, 1)
        assert msg.named_objects() == {"VendorName": "AB", "ModelName": "Z", "private-0x81": "X"}

    def test_diagnostics_fields(self) -> None:
        """FC 8 renders the sub-function name and the data words."""
        msg = decode_request(_h("08 0004 0000"), 1, 1)
        assert msg.fields() == {"sub_function": 4, "sub_function_name": "force_listen_only_mode",
                                "data": "0000", "values": [0]}

    def test_exception_fields(self) -> None:
        """An exception response renders its code and name."""
        msg = decode_response(_h("90 02"), 1, 1)
        assert (msg.fc, msg.is_exception, msg.name) == (16, True, "write_multiple_registers")
        assert msg.fields() == {"exception_code": 2, "exception": "illegal_data_address"}

    def test_read_file_record_fields_are_json(self) -> None:
        """FC 20 response records render as JSON-ready lists, record data as hex."""
        msg = decode_response(_h("14 06 05 06 0001 0002"), 1, 1)
        assert msg.fields() == {"records": [[6, "00010002"]]}
        json.dumps(msg.fields())

    def test_write_file_record_fields(self) -> None:
        """FC 21 records render as lists with their register values."""
        pdu = bytes([0x15, 9]) + struct.pack(">BHHH", 6, 4, 1, 1) + b"\x12\x34"
        assert decode_request(pdu, 1, 1).fields() == {"records": [[6, 4, 1, [0x1234]]]}
