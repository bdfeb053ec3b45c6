from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptureStats(_message.Message):
    __slots__ = ("source", "packets", "bytes", "kernel_drops", "interface_drops", "libpcap_drops")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    KERNEL_DROPS_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_DROPS_FIELD_NUMBER: _ClassVar[int]
    LIBPCAP_DROPS_FIELD_NUMBER: _ClassVar[int]
    source: str
    packets: int
    bytes: int
    kernel_drops: int
    interface_drops: int
    libpcap_drops: int
    def __init__(self, source: _Optional[str] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ..., kernel_drops: _Optional[int] = ..., interface_drops: _Optional[int] = ..., libpcap_drops: _Optional[int] = ...) -> None: ...

class HostStats(_message.Message):
    __slots__ = ("cpu_percent", "memory_rss_bytes", "memory_percent", "disk_free_bytes", "disk_total_bytes")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_rss_bytes: int
    memory_percent: float
    disk_free_bytes: int
    disk_total_bytes: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_rss_bytes: _Optional[int] = ..., memory_percent: _Optional[float] = ..., disk_free_bytes: _Optional[int] = ..., disk_total_bytes: _Optional[int] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("version", "agent_clock_ns", "uptime_ns", "capture", "flows_active", "flows_total", "outbox_depth", "outbox_bytes", "outbox_dropped", "host", "mode")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_CLOCK_NS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    FLOWS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FLOWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    version: str
    agent_clock_ns: int
    uptime_ns: int
    capture: _containers.RepeatedCompositeFieldContainer[CaptureStats]
    flows_active: int
    flows_total: int
    outbox_depth: int
    outbox_bytes: int
    outbox_dropped: int
    host: HostStats
    mode: str
    def __init__(self, version: _Optional[str] = ..., agent_clock_ns: _Optional[int] = ..., uptime_ns: _Optional[int] = ..., capture: _Optional[_Iterable[_Union[CaptureStats, _Mapping]]] = ..., flows_active: _Optional[int] = ..., flows_total: _Optional[int] = ..., outbox_depth: _Optional[int] = ..., outbox_bytes: _Optional[int] = ..., outbox_dropped: _Optional[int] = ..., host: _Optional[_Union[HostStats, _Mapping]] = ..., mode: _Optional[str] = ...) -> None: ...
