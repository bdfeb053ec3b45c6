from otsentry.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_LOW: _ClassVar[Severity]
    SEVERITY_MEDIUM: _ClassVar[Severity]
    SEVERITY_HIGH: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_LOW: Severity
SEVERITY_MEDIUM: Severity
SEVERITY_HIGH: Severity
SEVERITY_CRITICAL: Severity

class Flow(_message.Message):
    __slots__ = ("client_ip", "client_port", "server_ip", "server_port", "vlan")
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PORT_FIELD_NUMBER: _ClassVar[int]
    SERVER_IP_FIELD_NUMBER: _ClassVar[int]
    SERVER_PORT_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    vlan: int
    def __init__(self, client_ip: _Optional[str] = ..., client_port: _Optional[int] = ..., server_ip: _Optional[str] = ..., server_port: _Optional[int] = ..., vlan: _Optional[int] = ...) -> None: ...

class AssetRef(_message.Message):
    __slots__ = ("key", "name", "role")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    key: _common_pb2.AssetKey
    name: str
    role: str
    def __init__(self, key: _Optional[_Union[_common_pb2.AssetKey, _Mapping]] = ..., name: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("flow", "unit", "function_code", "addresses", "values", "frames", "offsets", "pcap", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    PCAP_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    unit: int
    function_code: int
    addresses: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    frames: _containers.RepeatedScalarFieldContainer[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    pcap: bytes
    details: _containers.ScalarMap[str, str]
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., unit: _Optional[int] = ..., function_code: _Optional[int] = ..., addresses: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[int]] = ..., frames: _Optional[_Iterable[int]] = ..., offsets: _Optional[_Iterable[int]] = ..., pcap: _Optional[bytes] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("id", "revision", "kind", "severity", "techniques", "first_seen_ns", "last_seen_ns", "count", "assets", "summary", "evidence", "times")
    ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TECHNIQUES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    id: str
    revision: int
    kind: str
    severity: Severity
    techniques: _containers.RepeatedScalarFieldContainer[str]
    first_seen_ns: int
    last_seen_ns: int
    count: int
    assets: _containers.RepeatedCompositeFieldContainer[AssetRef]
    summary: str
    evidence: Evidence
    times: _common_pb2.Times
    def __init__(self, id: _Optional[str] = ..., revision: _Optional[int] = ..., kind: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., techniques: _Optional[_Iterable[str]] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., count: _Optional[int] = ..., assets: _Optional[_Iterable[_Union[AssetRef, _Mapping]]] = ..., summary: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., times: _Optional[_Union[_common_pb2.Times, _Mapping]] = ...) -> None: ...
