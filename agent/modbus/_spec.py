"""Facts from the Modbus specifications, in one place, with citations.

Sources:
- [AP] MODBUS Application Protocol Specification V1.1b3 (2012).
- [TCP] MODBUS Messaging on TCP/IP Implementation Guide V1.0b (2006).
- [SEC] MODBUS/TCP Security Protocol Specification (2018), port 802.

Lookups never raise: unknown values render as ``unknown-<n>``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MODBUS_PORT", "MODBUS_TLS_PORT", "MBAP_LEN", "MIN_LENGTH", "MAX_LENGTH", "MAX_PDU",
    "FUNCTION_NAMES", "EXCEPTION_NAMES", "DIAGNOSTIC_NAMES", "DEVICE_ID_OBJECTS",
    "READ_BITS_MAX", "READ_REGISTERS_MAX", "WRITE_COILS_MAX", "WRITE_REGISTERS_MAX",
    "RW_WRITE_REGISTERS_MAX", "FIFO_MAX", "USER_DEFINED", "RESERVED", "PUBLIC",
    "MEI_CANOPEN", "MEI_DEVICE_ID", "WRITE_FUNCTIONS", "function_name", "exception_name",
    "diagnostic_name", "device_id_object_name", "function_class",
]

#: [TCP] §4.1: Modbus/TCP servers listen on port 502.
MODBUS_PORT: Final = 502
#: [SEC] §6: Modbus/TCP Security (TLS) uses port 802.
MODBUS_TLS_PORT: Final = 802
#: [TCP] §3.1.3: the MBAP header is 7 bytes: transaction id, protocol id, length, unit id.
MBAP_LEN: Final = 7
#: The MBAP length counts the unit id and the PDU: unit (1) + function code (1) at least.
MIN_LENGTH: Final = 2
#: [AP] §4.1: a PDU is at most 253 bytes, so length (unit + PDU) is at most 254.
MAX_LENGTH: Final = 254
MAX_PDU: Final = 253

#: [AP] §6.1, §6.2: read coils / discrete inputs, 1 to 2000 (0x7D0) bits.
READ_BITS_MAX: Final = 2000
#: [AP] §6.3, §6.4: read holding / input registers, 1 to 125 (0x7D) registers.
READ_REGISTERS_MAX: Final = 125
#: [AP] §6.11: write multiple coils, 1 to 1968 (0x7B0) coils.
WRITE_COILS_MAX: Final = 0x7B0
#: [AP] §6.12: write multiple registers, 1 to 123 (0x7B) registers.
WRITE_REGISTERS_MAX: Final = 123
#: [AP] §6.17: read/write multiple registers, write part 1 to 121 (0x79) registers.
RW_WRITE_REGISTERS_MAX: Final = 121
#: [AP] §6.18: a FIFO queue holds at most 31 registers.
FIFO_MAX: Final = 31

#: [AP] §6.19-6.21: MEI types carried by function code 43.
MEI_CANOPEN: Final = 13
MEI_DEVICE_ID: Final = 14

#: [AP] §5.1 and §6: public function codes and their names.
FUNCTION_NAMES: Final[dict[int, str]] = {
    1: "read_coils",
    2: "read_discrete_inputs",
    3: "read_holding_registers",
    4: "read_input_registers",
    5: "write_single_coil",
    6: "write_single_register",
    7: "read_exception_status",
    8: "diagnostics",
    11: "get_comm_event_counter",
    12: "get_comm_event_log",
    15: "write_multiple_coils",
    16: "write_multiple_registers",
    17: "report_server_id",
    20: "read_file_record",
    21: "write_file_record",
    22: "mask_write_register",
    23: "read_write_multiple_registers",
    24: "read_fifo_queue",
    43: "encapsulated_interface_transport",
    90: "umas",  # vendor (Schneider Electric UMAS) on a code [AP] Annex A reserves
}

PUBLIC: Final = frozenset(k for k in FUNCTION_NAMES if k != 90)
#: [AP] §5 Figure 10: user-defined function codes 65-72 and 100-110.
USER_DEFINED: Final = frozenset(range(65, 73)) | frozenset(range(100, 111))
#: [AP] Annex A: codes reserved for legacy products and not for public use.
RESERVED: Final = frozenset({9, 10, 13, 14, 41, 42, 90, 91, 125, 126, 127})
#: Function codes that change state in the device.
WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16, 21, 22, 23})

#: [AP] §7: exception codes.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    1: "illegal_function",
    2: "illegal_data_address",
    3: "illegal_data_value",
    4: "server_device_failure",
    5: "acknowledge",
    6: "server_device_busy",
    8: "memory_parity_error",
    10: "gateway_path_unavailable",
    11: "gateway_target_device_failed_to_respond",
}

#: [AP] §6.8.1: diagnostics (FC 8) sub-function codes.
DIAGNOSTIC_NAMES: Final[dict[int, str]] = {
    0: "return_query_data",
    1: "restart_communications_option",
    2: "return_diagnostic_register",
    3: "change_ascii_input_delimiter",
    4: "force_listen_only_mode",
    10: "clear_counters_and_diagnostic_register",
    11: "return_bus_message_count",
    12: "return_bus_communication_error_count",
    13: "return_bus_exception_error_count",
    14: "return_server_message_count",
    15: "return_server_no_response_count",
    16: "return_server_nak_count",
    17: "return_server_busy_count",
    18: "return_bus_character_overrun_count",
    20: "clear_overrun_counter_and_flag",
}

#: [AP] §6.21 Table "Device identification objects": 0x00-0x06 basic/regular, 0x07-0x7F
#: regular (reserved), 0x80-0xFF extended (vendor private).
DEVICE_ID_OBJECTS: Final[dict[int, str]] = {
    0x00: "VendorName",
    0x01: "ProductCode",
    0x02: "MajorMinorRevision",
    0x03: "VendorUrl",
    0x04: "ProductName",
    0x05: "ModelName",
    0x06: "UserApplicationName",
}

#: [AP] §6.21: read device id codes (1 basic stream, 2 regular, 3 extended, 4 one object).
READ_DEVICE_ID_CODES: Final[dict[int, str]] = {1: "basic", 2: "regular", 3: "extended", 4: "specific"}


def function_name(fc: int) -> str:
    """Name of a function code (without the exception bit); ``unknown-<n>`` if unassigned."""
    name = FUNCTION_NAMES.get(fc & 0x7F)
    if name is not None:
        return name
    if fc & 0x7F in USER_DEFINED:
        return f"user-defined-{fc & 0x7F}"
    if fc & 0x7F in RESERVED:
        return f"reserved-{fc & 0x7F}"
    return f"unknown-{fc & 0x7F}"


def function_class(fc: int) -> str:
    """``public``, ``vendor``, ``user-defined``, ``reserved`` or ``unassigned`` ([AP] §5)."""
    fc &= 0x7F
    if fc in PUBLIC:
        return "public"
    if fc == 90:
        return "vendor"
    if fc in USER_DEFINED:
        return "user-defined"
    if fc in RESERVED:
        return "reserved"
    return "unassigned"


def exception_name(code: int) -> str:
    """Name of an exception code; ``unknown-<n>`` if not in [AP] §7."""
    return EXCEPTION_NAMES.get(code, f"unknown-{code}")


def diagnostic_name(sub: int) -> str:
    """Name of an FC 8 sub-function; ``reserved-19``/``unknown-<n>`` otherwise."""
    if sub == 19:
        return "reserved-19"
    return DIAGNOSTIC_NAMES.get(sub, f"unknown-{sub}")


def device_id_object_name(obj: int) -> str:
    """Name of a device identification object id ([AP] §6.21)."""
    name = DEVICE_ID_OBJECTS.get(obj)
    if name is not None:
        return name
    return f"private-{obj:#04x}" if obj >= 0x80 else f"reserved-{obj:#04x}"
