"""Open Inference Protocol V2 (KServe / Triton), JSON and the binary tensor extension.

Pure functions from (state, path parameters, body, headers) to ``Response``; the ASGI and FastAPI
front doors only route to them. Compatible with an unmodified ``tritonclient.http`` client:
binary inputs follow the JSON header whose length is in ``Inference-Header-Content-Length``, and
outputs come back binary when the request asks (``binary_data_output`` or per-output
``binary_data``), JSON otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn._version import __version__
from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.serving import codecs, processed, tensor_body, typed_json
from modelfn.serving.inference import BINARY_TYPES, JSON_TYPES, header_int, require_content_type, run_model
from modelfn.serving.responses import OCTET_STREAM, Response, dumps, json_response

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest, TensorSpec
    from modelfn.loader import LoadedBundle
    from modelfn.serving.state import ModelState

SERVER_NAME = "modelfn"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "onnxruntime"
HEADER_LENGTH = "inference-header-content-length"


def server_live(state: ModelState) -> Response:
    """``GET /v2/health/live``: the process answers."""
    return json_response({"live": True})


def server_ready(state: ModelState) -> Response:
    """``GET /v2/health/ready``: 200 with the served model's identity, 503 + Retry-After while none is."""
    state.require()
    return json_response(state.health())


def server_metadata(state: ModelState) -> Response:
    """``GET /v2``."""
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)})


def model_metadata(state: ModelState, name: str, version: str | None = None) -> Response:
    """``GET /v2/models/{name}[/versions/{v}]``: names, V2 datatypes and shapes (-1 = dynamic)."""
    manifest = state.require_model(name, version).manifest
    return json_response(
        {
            "name": manifest.name,
            "versions": [str(manifest.version)],
            "platform": PLATFORM,
            "inputs": [_tensor_metadata(t) for t in manifest.inputs],
            "outputs": [_tensor_metadata(t) for t in manifest.outputs],
        }
    )


def model_ready(state: ModelState, name: str, version: str | None = None) -> Response:
    """``GET /v2/models/{name}[/versions/{v}]/ready``."""
    state.require_model(name, version)
    return json_response({"name": name, **state.health()})


def infer(state: ModelState, name: str, version: str | None, body: bytes, headers: Mapping[str, str]) -> Response:
    """``POST /v2/models/{name}[/versions/{v}]/infer``."""
    bundle = state.require_model(name, version)
    if tensor_body.is_tensor_body(headers):
        return _infer_tensor_body(bundle, body, headers)
    require_content_type(headers, JSON_TYPES + BINARY_TYPES)
    header, binary = _split_body(body, headers.get(HEADER_LENGTH))
    request = typed_json.v2_request(header) if not binary else None  # float data straight to arrays
    if request is None:
        request = codecs.loads(header)
    if not isinstance(request, dict):
        raise InvalidRequest("the inference request must be a JSON object", field="body")
    feeds = _decode_inputs(request.get("inputs"), binary, bundle.manifest)
    wanted = _requested_outputs(request)
    results = run_model(bundle.model, feeds, [n for n, _ in wanted] if wanted else None)
    return _respond(bundle, request, wanted, results)


def _infer_tensor_body(bundle: LoadedBundle, body: bytes, headers: Mapping[str, str]) -> Response:
    """A raw ``octet-stream`` / ``.npy`` body for the single input: a V2 JSON reply, or the tensor if accepted."""
    form = tensor_body.reply_form(headers)
    tensor_body.check_reply_form(form, bundle.model.output_names)
    input_name, array = tensor_body.decode(body, headers, bundle.manifest)
    results = run_model(bundle.model, {input_name: array})
    if form != tensor_body.JSON:
        return tensor_body.tensor_response(results, form)
    return _respond(bundle, {}, [], results)


def _respond(
    bundle: LoadedBundle,
    request: Mapping[str, Any],
    wanted: list[tuple[str, bool | None]],
    results: Mapping[str, npt.NDArray[Any]],
) -> Response:
    """The V2 response: JSON outputs, or a JSON header followed by the binary ones."""
    default_binary = _parameters(request, "request").get("binary_data_output", False) is True
    binary_of = dict(wanted) if wanted else {}
    response: dict[str, Any] = {"model_name": bundle.manifest.name, "model_version": str(bundle.manifest.version)}
    if isinstance(request.get("id"), str):
        response["id"] = request["id"]
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out_name, array in results.items():
        tensor: dict[str, Any] = {
            "name": out_name,
            "datatype": codecs.v2_datatype(array.dtype),
            "shape": list(array.shape),
        }
        as_binary = binary_of.get(out_name)
        if as_binary is None:
            as_binary = default_binary
        if as_binary:
            blob = codecs.encode_binary(array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = codecs.json_data(array)
        outputs.append(tensor)
    response["outputs"] = outputs
    if not blobs:
        return json_response(response)
    head = dumps(response)
    return Response(
        status=200,
        body=b"".join([head, *blobs]),
        content_type=OCTET_STREAM,
        headers=((HEADER_LENGTH, str(len(head))),),
    )


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": codecs.v2_datatype(spec.dtype), "shape": list(spec.shape)}


def _split_body(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview]:
    """JSON header and the binary tail (empty without the binary extension)."""
    view = memoryview(body)
    if header_length is None:
        return view, view[:0]
    split = header_int(header_length, field="Inference-Header-Content-Length", upper=len(body))
    return view[:split], view[split:]


def _parameters(obj: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest(f"{field} parameters must be a JSON object", field=field)
    return params


def _decode_inputs(inputs: Any, binary: memoryview, manifest: Manifest) -> dict[str, npt.NDArray[Any]]:
    """Each input from JSON ``data`` or its slice of the binary tail; every binary byte must be claimed.

    A bundle with image preprocessing also takes its image input as a ``BYTES`` tensor of encoded
    pictures (binary elements, or base64 strings in JSON ``data`` as KServe's V2 image examples send).
    """
    image = processed.image_spec(manifest)
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise InvalidRequest("'inputs' must be a non-empty list of tensor objects", field="inputs")
    feeds: dict[str, npt.NDArray[Any]] = {}
    offset = 0
    for index, tensor in enumerate(inputs):
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"inputs[{index}] needs a string 'name'", field=f"inputs[{index}].name")
        if name in feeds:
            raise InvalidRequest(f"input {name!r} appears twice", field=name)
        shape = codecs.check_shape(tensor.get("shape"), field=name)
        datatype = tensor.get("datatype")
        codecs.numpy_dtype(datatype, field=name)
        size = _parameters(tensor, name).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise InvalidRequest(
                    f"input {name!r} binary_data_size {size!r} does not fit the {len(binary)} binary bytes sent",
                    field=name,
                )
            raw = binary[offset : offset + size]
            if image is not None and name == image.input and datatype == "BYTES":
                blobs = codecs.deserialize_raw_bytes(raw, math.prod(shape), field=name)
                feeds.update(processed.image_feeds(blobs, manifest, field=name))
            else:
                feeds[name] = codecs.decode_binary_data(raw, datatype, shape, field=name)
            offset += size
        elif "data" in tensor:
            if image is not None and name == image.input and datatype == "BYTES":
                blobs = _b64_items(tensor["data"], math.prod(shape), name)
                feeds.update(processed.image_feeds(blobs, manifest, field=name))
            else:
                feeds[name] = codecs.decode_json_data(tensor["data"], datatype, shape, field=name)
        else:
            raise InvalidRequest(f"input {name!r} has neither 'data' nor a binary_data_size", field=name)
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} binary bytes after the inputs belong to no tensor", field="body")
    return feeds


def _b64_items(data: Any, count: int, name: str) -> list[bytes]:
    """JSON ``data`` of a BYTES image tensor: base64 strings (or ``{"b64": ...}``), flat or nested."""
    items = codecs.flat_items(data, field=name) if isinstance(data, list) else [data]
    if len(items) != count:
        raise UnprocessableInput(f"tensor {name!r} has {len(items)} elements, shape needs {count}", field=name)
    blobs: list[bytes] = []
    for item in items:
        text = item.get("b64") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise InvalidRequest(f"tensor {name!r}: each image must be a base64 string", field=name)
        blobs.append(processed.decode_b64(text, field=name))
    return blobs


def _requested_outputs(request: Mapping[str, Any]) -> list[tuple[str, bool | None]]:
    """``[(name, binary or None for the request default)]``; empty means every output."""
    outputs = request.get("outputs")
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidRequest("'outputs' must be a list of objects with a string 'name'", field="outputs")
    wanted: list[tuple[str, bool | None]] = []
    for out in outputs:
        if any(out["name"] == seen for seen, _ in wanted):
            raise InvalidRequest(f"output {out['name']!r} is requested twice", field=out["name"])
        flag = _parameters(out, out["name"]).get("binary_data")
        wanted.append((out["name"], flag if isinstance(flag, bool) else None))
    return wanted
