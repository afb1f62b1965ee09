"""The few parts of ONNX's protobuf wire format that quantized_model.py rewrites.

ModelProto, GraphProto, NodeProto and TensorProto fields are read and written directly
(onnx/onnx.proto3 gives the field numbers), so deriving a model needs nothing beyond the
standard library, and everything the rewrite does not touch is copied byte for byte:
the output is a pure function of the input, which is what lets a derived file be pinned
by sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

VARINT, I64, LEN, I32 = 0, 1, 2, 5
INT8, UINT8, FLOAT, INT32 = 3, 2, 1, 6  # TensorProto.DataType
ATTR_INT = 2  # AttributeProto.AttributeType

# Field numbers (onnx/onnx.proto3)
MODEL_GRAPH, MODEL_OPSET = 7, 8
OPSET_DOMAIN = 1
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_VALUE_INFO = 1, 5, 13
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = (
    1,
    2,
    3,
    4,
    5,
    7,
)
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_NAME, TENSOR_RAW = 1, 2, 8, 9
VALUE_INFO_NAME = 1


class TransformError(ValueError):
    """The file is not the graph this rewrite knows (nothing is written)."""


# -- protobuf wire format -------------------------------------------------------------------


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TransformError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TransformError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes, bytes]]:
    """(field number, wire type, value, the field's raw bytes) of one message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = varint(buf, pos)
        elif wire == I64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == LEN:
            size, pos = varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == I32:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise TransformError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise TransformError("truncated field")
        yield number, wire, value, buf[start:pos]


def enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def len_field(number: int, payload: bytes) -> bytes:
    return enc_varint(number << 3 | LEN) + enc_varint(len(payload)) + payload


def int_field(number: int, value: int) -> bytes:
    return enc_varint(number << 3 | VARINT) + enc_varint(value)


def node(
    op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **ints: int
) -> bytes:
    body = b"".join(len_field(NODE_INPUT, i.encode()) for i in inputs)
    body += b"".join(len_field(NODE_OUTPUT, o.encode()) for o in outputs)
    body += len_field(NODE_NAME, name.encode()) + len_field(NODE_OP_TYPE, op.encode())
    for key, value in ints.items():
        attr = len_field(1, key.encode()) + int_field(3, value) + int_field(20, ATTR_INT)
        body += len_field(NODE_ATTRIBUTE, attr)
    if domain:
        body += len_field(NODE_DOMAIN, domain.encode())
    return len_field(GRAPH_NODE, body)


def initializer(name: str, dtype: int, dims: tuple[int, ...], raw: bytes) -> bytes:
    body = b"".join(int_field(TENSOR_DIMS, d) for d in dims)
    body += int_field(TENSOR_DATA_TYPE, dtype) + len_field(TENSOR_NAME, name.encode())
    return len_field(GRAPH_INITIALIZER, body + len_field(TENSOR_RAW, raw))


@dataclass
class Node:
    raw: bytes  # the whole GraphProto.node field
    op: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    cast_to: int | None = None


def parse_node(raw: bytes, body: bytes) -> Node:
    node = Node(raw)
    for number, _wire, value, _ in fields(body):
        if not isinstance(value, bytes):
            continue
        if number == NODE_INPUT:
            node.inputs.append(value.decode())
        elif number == NODE_OUTPUT:
            node.outputs.append(value.decode())
        elif number == NODE_NAME:
            node.name = value.decode()
        elif number == NODE_OP_TYPE:
            node.op = value.decode()
        elif number == NODE_DOMAIN:
            node.domain = value.decode()
        elif number == NODE_ATTRIBUTE:
            attr = {n: v for n, _w, v, _ in fields(value)}
            to = attr.get(3)
            if attr.get(1) == b"to" and isinstance(to, int):
                node.cast_to = to
    return node


def tensor_info(body: bytes) -> tuple[str, int, tuple[int, ...], bytes | None]:
    """(name, data type, dims, raw data or None when stored another way)."""
    name, dtype, dims, raw = "", 0, [], None
    for number, wire, value, _ in fields(body):
        if number == TENSOR_NAME and isinstance(value, bytes):
            name = value.decode()
        elif number == TENSOR_RAW and isinstance(value, bytes):
            raw = value
        elif number == TENSOR_DATA_TYPE and isinstance(value, int):
            dtype = value
        elif number == TENSOR_DIMS:
            if wire == LEN and isinstance(value, bytes):  # packed
                pos = 0
                while pos < len(value):
                    d, pos = varint(value, pos)
                    dims.append(d)
            elif isinstance(value, int):
                dims.append(value)
    return name, dtype, tuple(dims), raw
