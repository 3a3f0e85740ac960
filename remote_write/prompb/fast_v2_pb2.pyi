from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RawRequest(_message.Message):
    __slots__ = ("symbols", "timeseries")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[bytes]
    timeseries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, symbols: _Optional[_Iterable[bytes]] = ..., timeseries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ExemplarSeries(_message.Message):
    __slots__ = ("exemplars",)
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    exemplars: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, exemplars: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ExemplarRequest(_message.Message):
    __slots__ = ("timeseries",)
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    timeseries: _containers.RepeatedCompositeFieldContainer[ExemplarSeries]
    def __init__(self, timeseries: _Optional[_Iterable[_Union[ExemplarSeries, _Mapping]]] = ...) -> None: ...
