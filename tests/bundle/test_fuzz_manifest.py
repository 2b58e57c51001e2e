"""Hostile manifests: only typed errors, whether parsed alone or really signed and loaded (SECURITY.md 21).

A manifest is parsed only after its digest is verified, so the worst case is a trusted key that
signed a malformed or lying manifest (a build bug, a compromised pipeline). The loader must then
refuse with a ``ModelfnError`` (the node stays not ready), never crash with a raw exception.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfn.bundle.manifest import Manifest
from modelfn.config import Settings
from modelfn.errors import ModelfnError, UnsafeBundleError
from modelfn.loader import LoadedBundle, load_bundle
from modelfn.signing.sign import sign_bundle
from tests.fixtures.keys import SigningKey, make_signing_key
from tests.serving.tiny_models import linear_bundle, linear_onnx

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int64", "uint64", "bool", "string", "complex64"]
TENSOR = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "y", "label", "", "ü"]),
        "dtype": st.sampled_from(DTYPES),
        "shape": st.lists(st.integers(min_value=-2, max_value=5), max_size=3),
    }
)
PLAUSIBLE = {
    ("name",): st.sampled_from(["linear", "other", "", "../x"]),
    ("version",): st.integers(min_value=-1, max_value=3),
    ("runtime",): st.sampled_from(["onnx", "python", "torch"]),
    ("artifact",): st.sampled_from(["model.onnx", "manifest.json", "model.sig", "../model.onnx", "missing.onnx"]),
    ("inputs",): st.lists(TENSOR, max_size=2),
    ("outputs",): st.lists(TENSOR, max_size=3),
    ("inputs", 0): TENSOR,
    ("outputs", 0): TENSOR,
    ("labels",): st.none() | st.lists(st.text(max_size=4) | st.integers(), max_size=4),
    ("encryption",): st.none() | JSON,
    ("created_at",): st.sampled_from(["2024-04-09T18:03:49Z", "yesterday", "9999-99-99T00:00:00Z"]),
}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_manifest() -> dict[str, Any]:
    """The linear model's manifest as plain JSON data."""
    data: dict[str, Any] = json.loads(linear_bundle().manifest.to_json())
    data["version"] = 1
    return data


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return make_signing_key(tmp_path_factory.mktemp("fuzz-keys"))


def _replace(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=256) | JSON.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_manifest_bytes_raise_only_unsafe_bundle_error(raw: bytes) -> None:
    # GIVEN any bytes as manifest.json WHEN parsed THEN a typed refusal (or, by chance, a valid manifest)
    try:
        manifest = Manifest.from_json(raw)
    except UnsafeBundleError as exc:
        assert "manifest.json" in exc.message
        return
    assert isinstance(manifest, Manifest)


@FUZZ
@given(path=st.sampled_from([*PLAUSIBLE, ("opset",), ("framework",), ("parity",), ("schema_version",)]), value=JSON)
def test_one_field_replaced_by_any_json_raises_only_unsafe_bundle_error(
    valid_manifest: dict[str, Any], path: tuple[str | int, ...], value: Any
) -> None:
    # GIVEN the valid manifest with one field replaced by arbitrary JSON
    raw = json.dumps(_replace(valid_manifest, path, value)).encode()
    # WHEN parsed THEN it is a valid manifest holding that value, or a typed refusal naming manifest.json
    try:
        Manifest.from_json(raw)
    except UnsafeBundleError as exc:
        assert "manifest.json" in exc.message


@FUZZ
@given(data=st.data(), path=st.sampled_from(list(PLAUSIBLE)))
def test_signed_lying_manifest_is_refused_with_a_typed_error_or_serves(
    tmp_path_factory: pytest.TempPathFactory,
    key: SigningKey,
    valid_manifest: dict[str, Any],
    data: st.DataObject,
    path: tuple[str | int, ...],
) -> None:
    # GIVEN a bundle whose manifest lies about the model (dtypes, shapes, artifact, runtime, identity),
    # really signed by the trusted key and placed in a local store
    manifest = _replace(valid_manifest, path, data.draw(PLAUSIBLE[path], label="value"))
    store = tmp_path_factory.mktemp("store")
    bundle = store / "linear" / "1"
    bundle.mkdir(parents=True)
    (bundle / "model.onnx").write_bytes(linear_onnx())
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    sign_bundle(bundle, key.signer, name="linear", version=1)
    config = Settings(
        store_url=str(store), model_name="linear", model_version="1", trusted_keys=(str(key.public_path),), threads=1
    )
    # WHEN the function loads it
    try:
        loaded = load_bundle(config)
    except ModelfnError as exc:
        # THEN a typed refusal with a message (the node stays not ready)
        assert type(exc) is not ModelfnError and exc.message
        return
    # THEN or it loaded because the lie was harmless: the served identity is the signed one
    assert isinstance(loaded, LoadedBundle)
    assert (loaded.manifest.name, loaded.manifest.version) == ("linear", 1)


def test_the_unmodified_signed_manifest_loads(tmp_path: Path, key: SigningKey, valid_manifest: dict[str, Any]) -> None:
    # GIVEN the valid manifest, signed and stored the same way as in the fuzz test above
    bundle = tmp_path / "linear" / "1"
    bundle.mkdir(parents=True)
    (bundle / "model.onnx").write_bytes(linear_onnx())
    (bundle / "manifest.json").write_text(json.dumps(valid_manifest))
    sign_bundle(bundle, key.signer, name="linear", version=1)
    # WHEN loaded THEN it serves (so the refusals above are about the lies, not the set-up)
    loaded = load_bundle(
        Settings(store_url=str(tmp_path), model_name="linear", model_version="1", trusted_keys=(str(key.public_path),))
    )
    assert loaded.manifest.inputs[0].name == "x"
