"""Reading the processing flags of ``modelfn package``: ``--preprocess`` files and shorthand, labels, feature names.

``requested`` returns plain tables (``{"image": {...}, "records": {...}, "output": {...}}``),
checked key by key against the ``Processing`` schema before the (slow) conversion runs; the
model-dependent defaults are filled in later by ``modelfn.packaging_processing.declare``.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from modelfn.bundle.processing import IMAGENET_MEAN, IMAGENET_STD, ImageProcessing, Processing
from modelfn.errors import PackagingError

PRESETS: dict[str, dict[str, tuple[float, ...]]] = {"imagenet": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
"""``mean=imagenet`` / ``std=imagenet`` in the shorthand."""
PLACEHOLDER = "?"
"""Stands for a name (the image input, the score output) until the model's schema gives it."""
_LIST_FIELDS = {"size", "mean", "std", "formats"}
_FRACTION_FIELDS = {"scale", "mean", "std"}


def parse_names(text: str) -> list[str]:
    """``--feature-names a,b,c`` or ``@file`` with one name per line."""
    if text.startswith("@"):
        names = [line.strip() for line in _read(Path(text[1:]), "feature_names").splitlines() if line.strip()]
    else:
        names = [name.strip() for name in text.split(",")]
    if not names or not all(names):
        raise PackagingError(f"--feature-names has an empty name in {text!r}", field="feature_names")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise PackagingError(f"--feature-names names {twice!r} twice", field="feature_names")
    return names


def read_labels(path: Path) -> list[str | int]:
    """Labels in output-index order: one per line (``imagenet_classes.txt``), a JSON list, or Keras's index JSON."""
    text = _read(path, "labels")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PackagingError(f"--labels {path.name} is not valid JSON: {exc}", field="labels") from exc
        return _json_labels(data, path.name)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PackagingError(f"--labels {path.name} holds no labels", field="labels")
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise PackagingError(f"--labels {path.name} line {blank + 1} is blank; one label per line", field="labels")
    return [line.strip() for line in lines]


def _json_labels(data: Any, name: str) -> list[str | int]:
    """A list of labels, or ``{"0": "cat"}`` / Keras's ``{"0": ["n01440764", "tench"]}`` ordered by index."""
    if isinstance(data, dict):
        try:
            ordered = sorted(data.items(), key=lambda item: int(item[0]))
        except ValueError as exc:
            raise PackagingError(f"--labels {name}: object keys must be class indices", field="labels") from exc
        if [int(k) for k, _ in ordered] != list(range(len(ordered))):
            raise PackagingError(f"--labels {name}: class indices must run 0..{len(ordered) - 1}", field="labels")
        data = [v[-1] if isinstance(v, list) and v else v for _, v in ordered]
    if not isinstance(data, list) or not data or not all(isinstance(v, str | int) for v in data):
        raise PackagingError(f"--labels {name} must hold a non-empty list of strings or integers", field="labels")
    return list(data)


def _read(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackagingError(f"--{flag.replace('_', '-')} {path}: cannot read: {exc}", field=flag) from exc


def requested_tables(spec: str | None) -> dict[str, Any]:
    """The ``--preprocess`` value as plain tables: ``{"image": {...}, "records": {...}, "output": {...}}``."""
    if spec is None:
        return {}
    if spec.lower().endswith((".json", ".toml")):
        return _from_file(Path(spec))
    kind, _, rest = spec.partition(":")
    if kind == "image":
        return {"image": _shorthand(rest)}
    if kind == "records":
        table = _pairs(rest) if rest else {}
        unknown = sorted(set(table) - {"input"})
        if unknown:
            raise PackagingError(f"--preprocess records: unknown key {unknown[0]!r}; only input=", field="preprocess")
        return {"records": table}
    raise PackagingError(
        f"--preprocess takes a .json/.toml file, image:key=value,... or records; got {spec!r}", field="preprocess"
    )


def _from_file(path: Path) -> dict[str, Any]:
    text = _read(path, "preprocess")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PackagingError(f"--preprocess {path.name} cannot be parsed: {exc}", field="preprocess") from exc
    if not isinstance(data, dict):
        raise PackagingError(f"--preprocess {path.name} must hold a table (image, records, output)", field="preprocess")
    unknown = sorted(set(data) - {"image", "records", "output"})
    if unknown:
        raise PackagingError(
            f"--preprocess {path.name}: unknown key {unknown[0]!r}; expected image, records or output",
            field=f"preprocess.{unknown[0]}",
        )
    placeholder = {k: {**v, "input": v.get("input", PLACEHOLDER)} if k == "image" and isinstance(v, dict) else v
                   for k, v in data.items()}  # fmt: skip
    if isinstance(data.get("records"), dict) and "features" not in data["records"]:
        placeholder["records"] = {**data["records"], "features": [PLACEHOLDER]}
    if isinstance(data.get("output"), dict) and "output" not in data["output"]:
        placeholder["output"] = {**data["output"], "output": PLACEHOLDER}
    convert(placeholder, Processing, "")  # every key and value checked before the (slow) conversion
    return data


def convert(data: Any, kind: type[Any], where: str, *, strict: bool = True) -> Any:
    try:
        return msgspec.convert(data, type=kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise PackagingError(f"--preprocess{where}: {exc}", field="preprocess") from exc


def _pairs(text: str) -> dict[str, str | list[str]]:
    """``a=1,b=2,3`` → ``{"a": "1", "b": ["2", "3"]}``: a part without ``=`` continues the previous value."""
    table: dict[str, str | list[str]] = {}
    key: str | None = None
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep:
            key = name.strip()
            if not key or key in table:
                raise PackagingError(f"--preprocess: empty or repeated key in {text!r}", field="preprocess")
            table[key] = value.strip()
        elif key is None:
            raise PackagingError(f"--preprocess: expected key=value, got {part!r}", field="preprocess")
        else:
            previous = table[key]
            table[key] = [*([previous] if isinstance(previous, str) else previous), part.strip()]
    return table


def _shorthand(text: str) -> dict[str, Any]:
    """``size=224,resize=256,mean=imagenet,...`` as an ``image`` table (numbers still text: converted leniently)."""
    fields = {f.name for f in msgspec.structs.fields(ImageProcessing)}
    table: dict[str, Any] = {}
    for key, value in _pairs(text).items():
        if key not in fields:
            raise PackagingError(
                f"--preprocess image: unknown key {key!r}; keys: {', '.join(sorted(fields))}",
                field=f"preprocess.image.{key}",
            )
        values: list[Any] = value if isinstance(value, list) else [value]
        if key == "size" and len(values) == 1:
            values = values[0].split("x")  # size=224x192
        if key in PRESETS.get(values[0], {}):
            values = [str(v) for v in PRESETS[values[0]][key]]
        if key in _FRACTION_FIELDS:
            values = [_number(v, key) for v in values]
        table[key] = values if key in _LIST_FIELDS else values[0] if len(values) == 1 else values
    size = table.get("size")
    if isinstance(size, list) and len(size) == 1:
        table["size"] = size * 2
    if "size" not in table:
        raise PackagingError("--preprocess image: size= is required (e.g. size=224)", field="preprocess.image.size")
    return table


def _number(text: str, key: str) -> float:
    try:
        numerator, _, denominator = text.partition("/")  # 1/255, 1/127.5
        value = float(numerator) / float(denominator) if denominator else float(numerator)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    except (ValueError, ZeroDivisionError) as exc:
        raise PackagingError(
            f"--preprocess image: {key}={text!r} is not a number", field=f"preprocess.image.{key}"
        ) from exc
