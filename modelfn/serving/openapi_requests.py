"""Candidate example requests per protocol, from one manifest: what each front door's clients send.

Ordered as a reader would try them: the bundle's own preprocessing first (an image, named
features), then tensors. ``openapi_document`` keeps the candidates the served model answers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelfn.serving.openapi_examples import (
    CSV,
    JSON,
    NPY,
    OCTET_STREAM,
    PNG,
    SHAPE_HEADER,
    TEXT,
    V2_HEADER_LENGTH,
    Example,
    bytes_example,
    csv_body,
    example_shape,
    form_example,
    image_input,
    json_example,
    npy_bytes,
    png,
    record,
    tensor_bytes,
    tensor_rows,
    tensor_value,
)
from modelfn.serving.responses import dumps

if TYPE_CHECKING:
    from modelfn.bundle.manifest import Manifest


def predict_examples(manifest: Manifest) -> list[Example]:
    """``POST /predict``: images, records, CSV, rows, columns, labels, forms and raw tensors."""
    out: list[Example] = []
    image = image_input(manifest)
    if image is not None:
        picture = png()
        b64 = base64.b64encode(picture).decode()
        keras = "Keras REST API: a multipart `image` field"
        out += [
            json_example("image_b64", 'An image as {"b64": ...}', {"instances": [{"b64": b64}]}),
            json_example("image_b64_named", "An image named by its input", {"instances": [{image: {"b64": b64}}]}),
            bytes_example("image_body", "A PNG or JPEG file as the body", PNG, picture),
            form_example("keras_image", keras, "image", "example.png", PNG, picture),
        ]  # fmt: skip
    out += _records(manifest, "records", lambda r: {"instances": [r]})
    rows = tensor_rows(manifest)
    if rows is not None:
        instances, inputs = rows
        out += [
            json_example("instances", "Rows (TF Serving's row format)", {"instances": instances}),
            json_example("inputs", "Columns: {input: value}, or a bare value for one input", {"inputs": inputs}),
        ]
        if manifest.labels and (manifest.processing is None or manifest.processing.output is None):
            labelled = {"instances": instances, "return_labels": True}
            out.append(json_example("return_labels", "Rows, with the arg-max label per row", labelled))
        if len(manifest.inputs) == 1 and image is None:
            row = dumps(instances[0])
            out.append(
                form_example("keras_json", "Keras REST API form, one instance as JSON", "image", "row.json", JSON, row)
            )
    out += _raw_tensors(manifest)
    return out


def infer_examples(manifest: Manifest) -> list[Example]:
    """``POST /v2/models/{name}/infer``: JSON tensors, the binary tensor extension, raw tensors."""
    import numpy as np

    from modelfn.serving.codecs import encode_binary, v2_datatype

    out: list[Example] = []
    specs = manifest.inputs
    values = [tensor_value(spec) for spec in specs]
    if all(v is not None for v in values):
        tensors = [
            {"name": s.name, "shape": example_shape(s), "datatype": v2_datatype(s.dtype), "data": _flat(v)}
            for s, v in zip(specs, values, strict=True)
        ]
        out.append(json_example("json", "JSON tensors", {"inputs": tensors}))
        first = manifest.outputs[0].name
        chosen = {"inputs": tensors, "outputs": [{"name": first}]}
        out.append(json_example("json_outputs", f"JSON tensors, asking for {first!r} only", chosen))
        blobs = [
            encode_binary(np.array(v, dtype=object if s.dtype == "string" else s.dtype))
            for s, v in zip(specs, values, strict=True)
        ]
        header = dumps(
            {
                "inputs": [
                    {**{k: t[k] for k in ("name", "shape", "datatype")}, "parameters": {"binary_data_size": len(b)}}
                    for t, b in zip(tensors, blobs, strict=True)
                ],
                "parameters": {"binary_data_output": True},
            }
        )
        out.append(
            bytes_example(
                "binary",
                "Binary tensor extension: a JSON header, then the raw tensors (outputs binary too)",
                OCTET_STREAM,
                header + b"".join(blobs),
                (V2_HEADER_LENGTH, str(len(header))),
            )
        )
    return out + _raw_tensors(manifest)


def tfserving_examples(manifest: Manifest) -> list[Example]:
    """``POST /v1/models/{name}:predict``: row and columnar formats, named features, b64 images."""
    out: list[Example] = []
    image = image_input(manifest)
    if image is not None:
        b64 = base64.b64encode(png()).decode()
        out += [
            json_example("image_b64", 'An image as {"b64": ...}', {"instances": [{"b64": b64}]}),
            json_example("image_b64_named", "An image named by its input", {"instances": [{image: {"b64": b64}}]}),
        ]
    out += _records(manifest, "records", lambda r: {"instances": [r]})[:1]  # JSON only: no CSV here
    rows = tensor_rows(manifest)
    if rows is not None:
        instances, inputs = rows
        out += [
            json_example("row", "Row format: instances → predictions", {"instances": instances}),
            json_example("columnar", "Columnar format: inputs → outputs", {"inputs": inputs}),
            json_example(
                "signature",
                "With the signature name",
                {"signature_name": "serving_default", "instances": instances},
            ),
        ]
    return out


def torchserve_examples(manifest: Manifest) -> list[Example]:
    """``POST /predictions/{name}``: an image body or form, JSON rows in the shapes the old handlers took, text."""
    out: list[Example] = []
    if image_input(manifest) is not None:
        picture = png()
        out += [
            bytes_example("image_body", "An image file as the body (image classifier)", PNG, picture),
            form_example("form_image", "A multipart `data` field with an image", "data", "image.png", PNG, picture),
        ]  # fmt: skip
    out += _records(manifest, "records", lambda r: [r])
    rows = tensor_rows(manifest)
    if rows is not None:
        instances = rows[0]
        out += [
            json_example("list", "A bare list of rows", instances),
            json_example("data", '{"data": rows}', {"data": instances}),
            json_example("instances", '{"instances": rows}', {"instances": instances}),
            form_example(
                "form_json", "A multipart `data` field holding the rows", "data", "rows.json", JSON, dumps(instances)
            ),  # fmt: skip
        ]
    if [s.dtype for s in manifest.inputs] == ["string"]:
        out.append(Example("text", "Plain text, one row of a text model", TEXT, b"text", "text"))
    return out


def _records(manifest: Manifest, name: str, wrap: Callable[[dict[str, Any]], Any]) -> list[Example]:
    """A named-feature JSON example (``wrap`` shapes the row) and a CSV one, for a records bundle."""
    row = record(manifest)
    if row is None:
        return []
    text = csv_body(row)
    return [
        json_example(name, "Named features (the bundle maps them to the model's inputs)", wrap(row)),
        Example("csv", "CSV with a header row", CSV, text.encode(), text),
    ]


def _raw_tensors(manifest: Manifest) -> list[Example]:
    """A single numeric input as raw little-endian bytes or a ``.npy`` file."""
    if len(manifest.inputs) != 1:
        return []
    spec = manifest.inputs[0]
    out: list[Example] = []
    raw, npy = tensor_bytes(spec), npy_bytes(spec)
    shape = ",".join(str(d) for d in example_shape(spec))
    if raw is not None:
        out.append(
            bytes_example(
                "octet_stream",
                "Raw tensor bytes (little-endian), shaped by X-Tensor-Shape",
                OCTET_STREAM,
                raw,
                (SHAPE_HEADER, shape),
            )
        )
    if npy is not None:
        out.append(bytes_example("npy", "A .npy file (numpy.save)", NPY, npy))
    return out


def _flat(value: object) -> list[object]:
    if not isinstance(value, list):
        return [value]
    return [item for part in value for item in _flat(part)]
