"""``modelfn.load`` and ``Predictor``: verify-then-load from a real store, and predict from arrays, dicts or rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelfn
from modelfn.errors import (
    ConfigError,
    IntegrityError,
    InvalidRequest,
    ObjectNotFound,
    PolicyError,
    UnprocessableInput,
    UntrustedKeyError,
)
from modelfn.predictor import Predictor
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey
from tests.fixtures.models import tiny_onnx_expected

X = np.arange(8, dtype=np.float32).reshape(2, 4) / 10


def _load(published: Published, **options: object) -> Predictor:
    return modelfn.load(
        published.settings.store_url, published.name, trust=published.settings.trusted_keys[0], **options
    )


def test_load_verifies_and_predicts_from_a_local_store(local_published: Published) -> None:
    # GIVEN the tiny model signed and pushed to a local store
    # WHEN it is loaded through the public API
    model = _load(local_published)
    # THEN it is the signed model, and predicts what the graph computes
    assert isinstance(model, modelfn.Predictor)
    assert (model.name, model.version, model.manifest.name) == ("tiny", 1, "tiny")
    assert model.input_names == ["x"] and model.output_names == ["y"]
    assert model.labels is None
    assert model.health()["root_digest"] == model.root_digest and len(model.root_digest) == 64
    outputs = model.predict(X)
    assert list(outputs) == ["y"]
    np.testing.assert_allclose(outputs["y"], tiny_onnx_expected(X), rtol=1e-5, atol=1e-6)
    assert "tiny" in repr(model) and model.root_digest[:12] in repr(model)


def test_load_from_s3_with_a_path_as_the_trusted_key(s3_published: Published, signing_key: SigningKey) -> None:
    # GIVEN the model on a real S3 endpoint (moto_server); WHEN the key is given as a Path
    model = modelfn.load(s3_published.settings.store_url, "tiny", trust=signing_key.public_path, version=1)
    # THEN it loads and predicts
    np.testing.assert_allclose(model.predict(X)["y"], tiny_onnx_expected(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "inputs",
    [X, X.tolist(), {"x": X}, {"x": X.tolist()}, [{"x": row} for row in X.tolist()]],
    ids=["array", "nested-list", "dict-of-arrays", "dict-of-lists", "rows-as-dicts"],
)
def test_every_input_form_gives_the_same_answer(local_published: Published, inputs: object) -> None:
    model = _load(local_published)
    np.testing.assert_allclose(model.predict(inputs)["y"], tiny_onnx_expected(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "error", "field"),
    [
        ([[1.0, 2.0]], UnprocessableInput, "x"),  # wrong shape
        ({"z": X}, UnprocessableInput, "z"),  # unknown input name
        ([["a", "b", "c", "d"]], UnprocessableInput, "x"),  # text for a float input
        ([], InvalidRequest, "inputs"),
        ([{"x": [1, 2, 3, 4]}, {"y": [1, 2, 3, 4]}], UnprocessableInput, "inputs"),  # rows naming different inputs
    ],
    ids=["shape", "name", "dtype", "empty", "ragged-rows"],
)
def test_bad_inputs_raise_typed_errors_naming_the_field(
    local_published: Published, inputs: object, error: type[Exception], field: str
) -> None:
    model = _load(local_published)
    with pytest.raises(error) as caught:
        model.predict(inputs)
    assert getattr(caught.value, "field", None) == field
    assert getattr(caught.value, "status_code", 0) in (400, 422)


def test_a_multi_input_model_needs_named_inputs(tmp_path: Path, signing_key: SigningKey) -> None:
    from onnx import TensorProto, helper

    from modelfn.packaging import package

    # GIVEN a model with two inputs a and b (y = a + b)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "pair",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    (tmp_path / "pair.onnx").write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    )
    package(tmp_path / "pair.onnx", None, tmp_path / "bundle", name="pair", version=1)
    published = publish(tmp_path / "bundle", str(tmp_path / "store"), signing_key)
    model = _load(published)
    # WHEN inputs are named (as a dict, or as rows of dicts) THEN each goes to its input
    by_name = model.predict({"a": [[1.0, 2.0]], "b": [[10.0, 20.0]]})["y"]
    by_rows = model.predict([{"a": [1.0, 2.0], "b": [10.0, 20.0]}])["y"]
    np.testing.assert_allclose(by_name, [[11.0, 22.0]])
    np.testing.assert_allclose(by_rows, [[11.0, 22.0]])
    # WHEN a bare array is given THEN the error lists the inputs to name
    with pytest.raises(UnprocessableInput, match=r"\['a', 'b'\]") as caught:
        model.predict([[1.0, 2.0]])
    assert caught.value.field == "inputs"


def test_a_tampered_bundle_raises_the_integrity_error_naming_the_file(local_published: Published) -> None:
    # GIVEN model.onnx changed by one bit after signing
    path = Path(local_published.settings.store_url) / "tiny" / "1" / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    # WHEN it is loaded THEN the specific verification error names the file, and no predictor exists
    with pytest.raises(IntegrityError, match="model.onnx"):
        _load(local_published)


def test_a_key_outside_the_trust_set_is_refused(local_published: Published, other_signing_key: SigningKey) -> None:
    with pytest.raises(UntrustedKeyError):
        modelfn.load(local_published.settings.store_url, "tiny", trust=[str(other_signing_key.public_path)])


def test_without_trusted_keys_nothing_loads(local_published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELFN_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("MODELFN_CONFIG", raising=False)
    with pytest.raises(UntrustedKeyError, match="no trusted keys"):
        modelfn.load(local_published.settings.store_url, "tiny")


def test_unset_arguments_come_from_the_modelfn_variables(
    local_published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the store, model and key only in MODELFN_* variables (as a deployed function has them)
    for name, value in local_published.env.items():
        monkeypatch.setenv(name, value)
    # WHEN load() is called without arguments THEN it loads that model
    assert modelfn.load().manifest.name == "tiny"


def test_settings_pass_through_anti_rollback_and_unknown_names(local_published: Published) -> None:
    # GIVEN a minimum version above the published one THEN the signed version is refused
    with pytest.raises(PolicyError):
        _load(local_published, min_version=2)
    # GIVEN a setting name modelfn does not have THEN the error lists the valid ones
    with pytest.raises(ConfigError, match="min_version"):
        _load(local_published, minimum_version=2)


def test_an_absent_model_is_object_not_found(local_published: Published) -> None:
    with pytest.raises(ObjectNotFound):
        modelfn.load(local_published.settings.store_url, "absent", trust=local_published.settings.trusted_keys[0])
