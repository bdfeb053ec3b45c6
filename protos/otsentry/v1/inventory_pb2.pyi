from otsentry.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_UPDATED: _ClassVar[ChangeKind]
    CHANGE_KIND_REMOVED: _ClassVar[ChangeKind]
    CHANGE_KIND_SEEN: _ClassVar[ChangeKind]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_UPDATED: ChangeKind
CHANGE_KIND_REMOVED: ChangeKind
CHANGE_KIND_SEEN: ChangeKind

class DeviceIdObject(_message.Message):
    __slots__ = ("object_id", "value")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    object_id: int
    value: bytes
    def __init__(self, object_id: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class InventoryDelta(_message.Message):
    __slots__ = ("asset", "unit", "change", "revision", "attributes", "device_id", "times")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ASSET_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    asset: _common_pb2.AssetKey
    unit: int
    change: ChangeKind
    revision: int
    attributes: _containers.ScalarMap[str, str]
    device_id: _containers.RepeatedCompositeFieldContainer[DeviceIdObject]
    times: _common_pb2.Times
    def __init__(self, asset: _Optional[_Union[_common_pb2.AssetKey, _Mapping]] = ..., unit: _Optional[int] = ..., change: _Optional[_Union[ChangeKind, str]] = ..., revision: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., device_id: _Optional[_Iterable[_Union[DeviceIdObject, _Mapping]]] = ..., times: _Optional[_Union[_common_pb2.Times, _Mapping]] = ...) -> None: ...
