"""Inspect ONNX bytes before onnxruntime sees them, without importing ``onnx``.

A served model arrives as bytes in memory. onnxruntime would resolve external-data locations
relative to the working directory, so any external reference is refused here (SECURITY.md 13),
as are pickle payloads renamed to ``.onnx`` (rule 12). This walks the protobuf wire format of
``ModelProto`` directly: the ``onnx`` package is build-time only and far too heavy for a Lambda.
"""

from __future__ import annotations

import dataclasses

from modelfn.errors import UnsafeBundleError

# Field numbers from onnx.proto3 (stable since IR version 3).
_MODEL_OPSET, _MODEL_GRAPH, _MODEL_FUNCTIONS = 8, 7, 25
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_FUNCTION_NODE = 7
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_MAX_DEPTH = 64

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save archives


@dataclasses.dataclass
class OnnxFacts:
    """What the guard learned: opsets by domain and every external-data reference."""

    opsets: dict[str, int] = dataclasses.field(default_factory=dict)
    external: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(tensor name, location) pairs."""
    has_graph: bool = False


def inspect_onnx(data: bytes | memoryview, *, artifact: str = "model.onnx") -> OnnxFacts:
    """Parse just enough of ``data`` to vouch for it; raise ``UnsafeBundleError`` otherwise."""
    head = bytes(data[:4])
    if head[:2] in PICKLE_MAGIC or head[:1] == b"\x80":
        raise UnsafeBundleError(f"{artifact} is a pickle stream (magic {head[:2].hex()}), refused: pickle never loads")
    if head == ZIP_MAGIC:
        raise UnsafeBundleError(f"{artifact} is a zip archive (a torch.save checkpoint?), not an ONNX model")
    facts = OnnxFacts()
    view = memoryview(data)
    try:
        for field, value in _fields(view):
            if field == _MODEL_OPSET and isinstance(value, memoryview):
                domain, version = "", 0
                for f, v in _fields(value):
                    if f == _OPSET_DOMAIN and isinstance(v, memoryview):
                        domain = bytes(v).decode()
                    elif f == _OPSET_VERSION and isinstance(v, int):
                        version = v
                facts.opsets[domain or "ai.onnx"] = version
            elif field == _MODEL_GRAPH and isinstance(value, memoryview):
                facts.has_graph = True
                _walk_graph(value, facts, 0)
            elif field == _MODEL_FUNCTIONS and isinstance(value, memoryview):
                for f, v in _fields(value):
                    if f == _FUNCTION_NODE and isinstance(v, memoryview):
                        _walk_node(v, facts, 0)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise UnsafeBundleError(f"{artifact} is not a valid ONNX model ({exc})") from exc
    if not facts.has_graph:
        raise UnsafeBundleError(f"{artifact} is not a valid ONNX model (no graph)")
    return facts


def refuse_external_data(facts: OnnxFacts, *, artifact: str = "model.onnx") -> None:
    """Served models must embed their weights: name the first external reference and why it is refused."""
    for tensor, location in facts.external:
        if location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
            why = "an absolute path"
        elif ".." in location.replace("\\", "/").split("/"):
            why = "a path outside the bundle ('..')"
        else:
            why = "external data (served bundles embed their weights)"
        raise UnsafeBundleError(f"{artifact}: tensor {tensor!r} points to {location!r}, {why}; refused")


def _walk_graph(graph: memoryview, facts: OnnxFacts, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("graph nesting too deep")
    for field, value in _fields(graph):
        if not isinstance(value, memoryview):
            continue
        if field == _GRAPH_INITIALIZER:
            _check_tensor(value, facts)
        elif field == _GRAPH_SPARSE_INITIALIZER:
            _check_sparse(value, facts)
        elif field == _GRAPH_NODE:
            _walk_node(value, facts, depth + 1)


def _walk_node(node: memoryview, facts: OnnxFacts, depth: int) -> None:
    for field, value in _fields(node):
        if field != _NODE_ATTRIBUTE or not isinstance(value, memoryview):
            continue
        for f, v in _fields(value):
            if not isinstance(v, memoryview):
                continue
            if f in (_ATTR_T, _ATTR_TENSORS):
                _check_tensor(v, facts)
            elif f in (_ATTR_G, _ATTR_GRAPHS):
                _walk_graph(v, facts, depth + 1)
            elif f in (_ATTR_SPARSE, _ATTR_SPARSES):
                _check_sparse(v, facts)


def _check_sparse(sparse: memoryview, facts: OnnxFacts) -> None:
    for field, value in _fields(sparse):
        if field in (_SPARSE_VALUES, _SPARSE_INDICES) and isinstance(value, memoryview):
            _check_tensor(value, facts)


def _check_tensor(tensor: memoryview, facts: OnnxFacts) -> None:
    name, location, external = "", "", False
    for field, value in _fields(tensor):
        if field == _TENSOR_NAME and isinstance(value, memoryview):
            name = bytes(value).decode(errors="replace")
        elif field == _TENSOR_DATA_LOCATION and value == 1:
            external = True
        elif field == _TENSOR_EXTERNAL_DATA and isinstance(value, memoryview):
            entry = {f: bytes(v) for f, v in _fields(value) if isinstance(v, memoryview)}
            if entry.get(_ENTRY_KEY) == b"location":
                location = entry.get(_ENTRY_VALUE, b"").decode(errors="replace")
                external = True
    if external:
        facts.external.append((name, location or "<unnamed>"))


def _fields(buf: memoryview) -> list[tuple[int, int | memoryview]]:
    """Decode one protobuf message level: (field number, varint value or length-delimited bytes)."""
    out: list[tuple[int, int | memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated length-delimited field")
            out.append((field, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
    return out


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
