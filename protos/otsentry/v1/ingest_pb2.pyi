from otsentry.v1 import finding_pb2 as _finding_pb2
from otsentry.v1 import inventory_pb2 as _inventory_pb2
from otsentry.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("queued_ns", "finding", "inventory", "status")
    QUEUED_NS_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    queued_ns: int
    finding: _finding_pb2.Finding
    inventory: _inventory_pb2.InventoryDelta
    status: _status_pb2.AgentStatus
    def __init__(self, queued_ns: _Optional[int] = ..., finding: _Optional[_Union[_finding_pb2.Finding, _Mapping]] = ..., inventory: _Optional[_Union[_inventory_pb2.InventoryDelta, _Mapping]] = ..., status: _Optional[_Union[_status_pb2.AgentStatus, _Mapping]] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("agent_id", "epoch", "first_seq", "messages", "sent_ns")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SENT_NS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    epoch: int
    first_seq: int
    messages: _containers.RepeatedCompositeFieldContainer[Envelope]
    sent_ns: int
    def __init__(self, agent_id: _Optional[str] = ..., epoch: _Optional[int] = ..., first_seq: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ..., sent_ns: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("epoch", "seq", "ingest_ns")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INGEST_NS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    seq: int
    ingest_ns: int
    def __init__(self, epoch: _Optional[int] = ..., seq: _Optional[int] = ..., ingest_ns: _Optional[int] = ...) -> None: ...
