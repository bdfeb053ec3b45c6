from otsentry.v1 import common_pb2 as _common_pb2
from otsentry.v1 import finding_pb2 as _finding_pb2
from otsentry.v1 import inventory_pb2 as _inventory_pb2
from otsentry.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_FINDING: _ClassVar[EventKind]
    EVENT_KIND_INCIDENT: _ClassVar[EventKind]
    EVENT_KIND_ASSET: _ClassVar[EventKind]
    EVENT_KIND_AGENT: _ClassVar[EventKind]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_FINDING: EventKind
EVENT_KIND_INCIDENT: EventKind
EVENT_KIND_ASSET: EventKind
EVENT_KIND_AGENT: EventKind

class FeedFilter(_message.Message):
    __slots__ = ("sites", "min_severity", "techniques", "kinds", "assets", "detectors", "new_only")
    SITES_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TECHNIQUES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    DETECTORS_FIELD_NUMBER: _ClassVar[int]
    NEW_ONLY_FIELD_NUMBER: _ClassVar[int]
    sites: _containers.RepeatedScalarFieldContainer[str]
    min_severity: _finding_pb2.Severity
    techniques: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    assets: _containers.RepeatedScalarFieldContainer[str]
    detectors: _containers.RepeatedScalarFieldContainer[str]
    new_only: bool
    def __init__(self, sites: _Optional[_Iterable[str]] = ..., min_severity: _Optional[_Union[_finding_pb2.Severity, str]] = ..., techniques: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ..., assets: _Optional[_Iterable[str]] = ..., detectors: _Optional[_Iterable[str]] = ..., new_only: _Optional[bool] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("filter", "after", "since_ns", "until_ns", "history_only", "pcap")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    SINCE_NS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_NS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ONLY_FIELD_NUMBER: _ClassVar[int]
    PCAP_FIELD_NUMBER: _ClassVar[int]
    filter: FeedFilter
    after: int
    since_ns: int
    until_ns: int
    history_only: bool
    pcap: bool
    def __init__(self, filter: _Optional[_Union[FeedFilter, _Mapping]] = ..., after: _Optional[int] = ..., since_ns: _Optional[int] = ..., until_ns: _Optional[int] = ..., history_only: _Optional[bool] = ..., pcap: _Optional[bool] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("id", "key", "rule", "title", "severity", "status", "sites", "source_ip", "techniques", "member_count", "first_ns", "last_ns")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    TECHNIQUES_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_NS_FIELD_NUMBER: _ClassVar[int]
    id: int
    key: str
    rule: str
    title: str
    severity: _finding_pb2.Severity
    status: str
    sites: _containers.RepeatedScalarFieldContainer[str]
    source_ip: str
    techniques: _containers.RepeatedScalarFieldContainer[str]
    member_count: int
    first_ns: int
    last_ns: int
    def __init__(self, id: _Optional[int] = ..., key: _Optional[str] = ..., rule: _Optional[str] = ..., title: _Optional[str] = ..., severity: _Optional[_Union[_finding_pb2.Severity, str]] = ..., status: _Optional[str] = ..., sites: _Optional[_Iterable[str]] = ..., source_ip: _Optional[str] = ..., techniques: _Optional[_Iterable[str]] = ..., member_count: _Optional[int] = ..., first_ns: _Optional[int] = ..., last_ns: _Optional[int] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("id", "site", "key", "unit", "attributes", "device_id", "first_seen_ns", "last_seen_ns", "removed", "device_id_changed")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_CHANGED_FIELD_NUMBER: _ClassVar[int]
    id: int
    site: str
    key: _common_pb2.AssetKey
    unit: int
    attributes: _containers.ScalarMap[str, str]
    device_id: _containers.RepeatedCompositeFieldContainer[_inventory_pb2.DeviceIdObject]
    first_seen_ns: int
    last_seen_ns: int
    removed: bool
    device_id_changed: bool
    def __init__(self, id: _Optional[int] = ..., site: _Optional[str] = ..., key: _Optional[_Union[_common_pb2.AssetKey, _Mapping]] = ..., unit: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., device_id: _Optional[_Iterable[_Union[_inventory_pb2.DeviceIdObject, _Mapping]]] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., removed: _Optional[bool] = ..., device_id_changed: _Optional[bool] = ...) -> None: ...

class AgentHealth(_message.Message):
    __slots__ = ("status", "skew_ns")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SKEW_NS_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.AgentStatus
    skew_ns: int
    def __init__(self, status: _Optional[_Union[_status_pb2.AgentStatus, _Mapping]] = ..., skew_ns: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("live",)
    LIVE_FIELD_NUMBER: _ClassVar[int]
    live: bool
    def __init__(self, live: _Optional[bool] = ...) -> None: ...

class FeedEvent(_message.Message):
    __slots__ = ("cursor", "kind", "ref", "new", "site", "agent_id", "ingest_ns", "finding", "incident", "asset", "agent", "progress")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INGEST_NS_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    kind: EventKind
    ref: int
    new: bool
    site: str
    agent_id: str
    ingest_ns: int
    finding: _finding_pb2.Finding
    incident: Incident
    asset: Asset
    agent: AgentHealth
    progress: Progress
    def __init__(self, cursor: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., ref: _Optional[int] = ..., new: _Optional[bool] = ..., site: _Optional[str] = ..., agent_id: _Optional[str] = ..., ingest_ns: _Optional[int] = ..., finding: _Optional[_Union[_finding_pb2.Finding, _Mapping]] = ..., incident: _Optional[_Union[Incident, _Mapping]] = ..., asset: _Optional[_Union[Asset, _Mapping]] = ..., agent: _Optional[_Union[AgentHealth, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class FeedBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FeedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[FeedEvent, _Mapping]]] = ...) -> None: ...
