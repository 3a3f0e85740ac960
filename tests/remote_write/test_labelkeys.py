"""Label keys: the Label field as the wire carries it, for any name and value."""

from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.labelkeys import decode_label_key, decode_label_keys, label_key
from remote_write.prompb import types_pb2

TEXT = st.text(st.characters(codec="utf-8"), max_size=150)


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(TEXT.filter(bool), TEXT.filter(bool))
def test_key_is_the_serialized_label_with_its_length(name, value):
    message = types_pb2.Label(name=name, value=value).SerializeToString()
    assert label_key(name, value) == (varint(len(message)) + message).decode("latin-1")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), max_size=12))
def test_keys_decode_back_one_by_one_and_in_bulk(pairs):
    keys = [label_key(n, v) for n, v in pairs]
    assert [decode_label_key(k) for k in keys] == pairs
    names, values = decode_label_keys(keys)
    assert list(zip(names, values, strict=True)) == pairs


def test_invalid_utf8_keeps_its_bytes():
    assert decode_label_key(label_key("job", "a\udcffb")) == ("job", "a\udcffb")
