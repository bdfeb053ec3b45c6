from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Times(_message.Message):
    __slots__ = ("capture_ns", "agent_ns", "ingest_ns")
    CAPTURE_NS_FIELD_NUMBER: _ClassVar[int]
    AGENT_NS_FIELD_NUMBER: _ClassVar[int]
    INGEST_NS_FIELD_NUMBER: _ClassVar[int]
    capture_ns: int
    agent_ns: int
    ingest_ns: int
    def __init__(self, capture_ns: _Optional[int] = ..., agent_ns: _Optional[int] = ..., ingest_ns: _Optional[int] = ...) -> None: ...

class AssetKey(_message.Message):
    __slots__ = ("ip", "mac", "vlan")
    IP_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    ip: str
    mac: str
    vlan: int
    def __init__(self, ip: _Optional[str] = ..., mac: _Optional[str] = ..., vlan: _Optional[int] = ...) -> None: ...
