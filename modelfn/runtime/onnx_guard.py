"""Inspect ONNX bytes before onnxruntime sees them, without importing ``onnx``.

A served model arrives as bytes in memory. onnxruntime would resolve external-data locations
relative to the working directory, so an external reference is refused here (SECURITY.md 13)
unless it names one of the bundle's own signed data files, which onnxruntime then gets from
memory; pickle payloads renamed to ``.onnx`` are refused too (rule 12). This walks the protobuf wire format of
``ModelProto`` directly: the ``onnx`` package is build-time only and far too heavy for a Lambda.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection

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
_MAX_TENSOR_FIELDS = 256
"""A tensor with more fields holds one per element (string_data): searched, not walked."""

_LOCATION_KEY = b"location"
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save archives


@dataclasses.dataclass
class OnnxFacts:
    """What the guard learned: opsets by domain and every external-data reference."""

    opsets: dict[str, int] = dataclasses.field(default_factory=dict)
    external: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(tensor name, location) pairs."""
    has_graph: bool = False


Span = tuple[int, int]
"""A length-delimited field as (start, end) offsets into the model bytes."""


def inspect_onnx(data: bytes, *, artifact: str = "model.onnx") -> OnnxFacts:
    """Parse just enough of ``data`` to vouch for it; raise ``UnsafeBundleError`` otherwise."""
    data = bytes(data)
    head = data[:4]
    if head[:2] in PICKLE_MAGIC or head[:1] == b"\x80":
        raise UnsafeBundleError(f"{artifact} is a pickle stream (magic {head[:2].hex()}), refused: pickle never loads")
    if head == ZIP_MAGIC:
        raise UnsafeBundleError(f"{artifact} is a zip archive (a torch.save checkpoint?), not an ONNX model")
    facts = OnnxFacts()
    walker = _Walker(data, facts)
    try:
        walker.model()
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


def check_external_data(facts: OnnxFacts, data_files: Collection[str], *, artifact: str = "model.onnx") -> None:
    """External data only from the bundle's own signed data files, each of them referenced by the graph."""
    from modelfn.bundle.layout import ONNX_DATA_RE

    referenced = {location for _, location in facts.external}
    for tensor, location in facts.external:
        if location not in data_files or not ONNX_DATA_RE.match(location):
            raise UnsafeBundleError(
                f"{artifact}: tensor {tensor!r} points to {location!r}, which is not a signed data file of the"
                f" bundle ({', '.join(sorted(data_files)) or 'none'}); refused"
            )
    unused = sorted(set(data_files) - referenced)
    if unused:
        raise UnsafeBundleError(f"{artifact} references no tensor in data file(s) {unused}; refused")


class _Walker:
    """Walks ModelProto → graphs → nodes → attributes → tensors over one bytes object."""

    def __init__(self, data: bytes, facts: OnnxFacts) -> None:
        self.data = data
        self.facts = facts

    def mentions_location(self, span: Span) -> bool:
        """Whether ``span`` holds the bytes ``location`` at all (a C-speed search of that span only).

        External data can only be named through a StringStringEntryProto whose key is "location"
        (onnxruntime requires it), so a node without those bytes has nothing to find and is not
        walked: large tree ensembles cost one search. Initializers are walked field by field
        instead, which skips their weights by length: a 45 MB CNN is never searched end to end.
        """
        return self.data.find(_LOCATION_KEY, span[0], span[1]) >= 0

    def text(self, span: Span) -> str:
        return self.data[span[0] : span[1]].decode()

    def model(self) -> None:
        for field, value in _fields(self.data, 0, len(self.data)):
            if not isinstance(value, tuple):
                continue
            if field == _MODEL_OPSET:
                domain, version = "", 0
                for f, v in _fields(self.data, *value):
                    if f == _OPSET_DOMAIN and isinstance(v, tuple):
                        domain = self.text(v)
                    elif f == _OPSET_VERSION and isinstance(v, int):
                        version = v
                self.facts.opsets[domain or "ai.onnx"] = version
            elif field == _MODEL_GRAPH:
                self.facts.has_graph = True
                self.graph(value, 0)
            elif field == _MODEL_FUNCTIONS and self.mentions_location(value):
                for f, v in _fields(self.data, *value):
                    if f == _FUNCTION_NODE and isinstance(v, tuple):
                        self.node(v, 0)

    def graph(self, span: Span, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("graph nesting too deep")
        for field, value in _fields(self.data, *span):
            if not isinstance(value, tuple):
                continue
            if field == _GRAPH_INITIALIZER:
                self.tensor(value)
            elif field == _GRAPH_SPARSE_INITIALIZER:
                self.sparse(value)
            elif field == _GRAPH_NODE:
                self.node(value, depth + 1)

    def node(self, span: Span, depth: int) -> None:
        if not self.mentions_location(span):
            return
        for field, value in _fields(self.data, *span):
            if field != _NODE_ATTRIBUTE or not isinstance(value, tuple):
                continue
            for f, v in _fields(self.data, *value):
                if not isinstance(v, tuple):
                    continue
                if f in (_ATTR_T, _ATTR_TENSORS):
                    self.tensor(v)
                elif f in (_ATTR_G, _ATTR_GRAPHS):
                    self.graph(v, depth + 1)
                elif f in (_ATTR_SPARSE, _ATTR_SPARSES):
                    self.sparse(v)

    def sparse(self, span: Span) -> None:
        for field, value in _fields(self.data, *span):
            if field in (_SPARSE_VALUES, _SPARSE_INDICES) and isinstance(value, tuple):
                self.tensor(value)

    def tensor(self, span: Span) -> None:
        try:
            fields = _fields(self.data, *span, limit=_MAX_TENSOR_FIELDS)
        except _TooManyFields:  # string tensors: one field per element; search instead of walking
            if not self.mentions_location(span):
                return
            fields = _fields(self.data, *span)
        name, location, external = "", "", False
        for field, value in fields:
            if field == _TENSOR_NAME and isinstance(value, tuple):
                name = self.data[value[0] : value[1]].decode(errors="replace")
            elif field == _TENSOR_DATA_LOCATION and value == 1:
                external = True
            elif field == _TENSOR_EXTERNAL_DATA and isinstance(value, tuple):
                entry = {f: self.data[v[0] : v[1]] for f, v in _fields(self.data, *value) if isinstance(v, tuple)}
                if entry.get(_ENTRY_KEY) == b"location":
                    location = entry.get(_ENTRY_VALUE, b"").decode(errors="replace")
                    external = True
        if external:
            self.facts.external.append((name, location or "<unnamed>"))


class _TooManyFields(Exception):
    """A message had more fields than the caller's ``limit``."""


def _fields(data: bytes, start: int, end: int, limit: int | None = None) -> list[tuple[int, int | Span]]:
    """Decode one message level: (field number, varint value or span of length-delimited bytes).

    ONNX is proto2, so repeated scalars (tree ensembles hold hundreds of thousands) arrive
    unpacked, one key per value. The guard needs none of them: only the first value of a run is
    kept and the rest of the run is skipped by a compiled regex, at C speed. Past ``limit``
    decoded fields, ``_TooManyFields`` is raised.
    """
    out: list[tuple[int, int | Span]] = []
    pos = start
    while pos < end:
        if limit is not None and len(out) > limit:
            raise _TooManyFields
        key_start = pos
        key, pos = _varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 2:
            size, pos = _varint(data, pos, end)
            if pos + size > end:
                raise ValueError("truncated length-delimited field")
            out.append((field, (pos, pos + size)))
            pos += size
            continue
        key_bytes = data[key_start:pos]
        if wire == 0:
            value, pos = _varint(data, pos, end)
            out.append((field, value))
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        run = _scalar_run(key_bytes, wire).match(data, pos, end)
        if run:
            pos = run.end()
    return out


_RUNS: dict[tuple[bytes, int], re.Pattern[bytes]] = {}
_VALUE_PATTERNS = {0: rb"[\x80-\xff]{0,9}[\x00-\x7f]", 1: rb"[\s\S]{8}", 5: rb"[\s\S]{4}"}


def _scalar_run(key: bytes, wire: int) -> re.Pattern[bytes]:
    """A regex matching further entries with the same key: the rest of an unpacked repeated field."""
    pattern = _RUNS.get((key, wire))
    if pattern is None:
        pattern = re.compile(b"(?:" + re.escape(key) + _VALUE_PATTERNS[wire] + b")*")
        _RUNS[(key, wire)] = pattern
    return pattern


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
