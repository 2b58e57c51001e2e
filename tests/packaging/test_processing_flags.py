"""Reading the processing flags: the --preprocess shorthand and files, labels files and feature names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelfn.bundle.manifest import TensorSpec
from modelfn.bundle.processing import IMAGENET_MEAN, IMAGENET_STD
from modelfn.errors import PackagingError
from modelfn.packaging_processing import ProcessingRequest, declare
from modelfn.processing_flags import parse_names, read_labels


def test_image_shorthand_fills_the_image_fields() -> None:
    # GIVEN the README's shorthand with presets and one number for the size
    spec = ProcessingRequest(preprocess="image:size=224,resize=256,mean=imagenet,std=imagenet,layout=NHWC").image_spec()
    # THEN every key lands in its field, presets expanded and the size squared
    assert spec is not None
    assert spec.size == [224, 224] and spec.resize == 256 and spec.layout == "NHWC"
    assert spec.mean == pytest.approx(list(IMAGENET_MEAN)) and spec.std == pytest.approx(list(IMAGENET_STD))


def test_image_shorthand_lists_fractions_and_rectangles() -> None:
    spec = ProcessingRequest(preprocess="image:size=32x48,scale=1/127.5,mean=1,std=1,1,1,color=BGR").image_spec()
    assert spec is not None
    assert spec.size == [32, 48] and spec.scale == pytest.approx(1 / 127.5)
    assert spec.mean == [1.0, 1.0, 1.0] and spec.std == [1.0, 1.0, 1.0] and spec.color == "BGR"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("image:size=224,colour=RGB", "preprocess.image.colour", "unknown key 'colour'"),
        ("image:resize=256", "preprocess.image.size", "size= is required"),
        ("image:size=224,scale=abc", "preprocess.image.scale", "not a number"),
        ("image:size=224,layout=CHW", "preprocess", "layout"),
        ("image:size=224,resize=100", "preprocess", "smaller than the crop size"),
        ("image:size=224,mean=0.1,0.2", "preprocess", "mean has 2 values"),
        ("tensor:x", "preprocess", "image:key=value"),
        ("records:features=a", "preprocess", "unknown key 'features'"),
    ],
)
def test_bad_shorthand_is_refused_naming_the_key(text: str, field: str, words: str) -> None:
    with pytest.raises(PackagingError) as caught:
        ProcessingRequest(preprocess=text).image_spec()
    assert caught.value.field == field and words in caught.value.message


def test_a_processing_file_is_checked_key_by_key(tmp_path: Path) -> None:
    # GIVEN TOML and JSON files holding the Processing tables, one with a wrongly typed value
    good = tmp_path / "processing.toml"
    good.write_text("[image]\nsize = [64, 64]\nmean = [0.5, 0.5, 0.5]\n\n[output]\ntop_k = 2\n")
    bad = tmp_path / "processing.json"
    bad.write_text(json.dumps({"image": {"size": [64, "wide"]}}))
    unknown = tmp_path / "other.json"
    unknown.write_text(json.dumps({"images": {}}))
    # THEN the good one reads, the input left to the model's schema
    spec = ProcessingRequest(preprocess=str(good)).image_spec()
    assert spec is not None and spec.size == [64, 64]
    # AND the bad ones are refused naming the path of the key
    with pytest.raises(PackagingError, match=r"\$\.image\.size\[1\]"):
        ProcessingRequest(preprocess=str(bad)).image_spec()
    with pytest.raises(PackagingError, match="unknown key 'images'") as caught:
        ProcessingRequest(preprocess=str(unknown)).image_spec()
    assert caught.value.field == "preprocess.images"


def test_labels_files_one_per_line_json_list_and_keras_index(tmp_path: Path) -> None:
    # GIVEN the three label file shapes people have
    text = tmp_path / "imagenet_classes.txt"
    text.write_text("tench\ngoldfish\ngreat white shark\n\n")
    listed = tmp_path / "labels.json"
    listed.write_text(json.dumps(["no", "yes"]))
    keras = tmp_path / "imagenet_class_index.json"
    keras.write_text(json.dumps({"1": ["n01443537", "goldfish"], "0": ["n01440764", "tench"]}))
    # THEN each reads as labels in output-index order
    assert read_labels(text) == ["tench", "goldfish", "great white shark"]
    assert read_labels(listed) == ["no", "yes"]
    assert read_labels(keras) == ["tench", "goldfish"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("gap.txt", "a\n\nb\n", "line 2 is blank"),
        ("empty.txt", "\n", "holds no labels"),
        ("bad.json", "{", "not valid JSON"),
        ("gaps.json", '{"0": "a", "2": "b"}', "0..1"),
        ("nested.json", '[["a"]]', "list of strings"),
    ],
)
def test_bad_label_files_are_refused(tmp_path: Path, name: str, content: str, words: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PackagingError) as caught:
        read_labels(path)
    assert caught.value.field == "labels" and words in caught.value.message


def test_feature_names_inline_or_from_a_file(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n\nc\n")
    assert parse_names("a, b,c") == ["a", "b", "c"]
    assert parse_names(f"@{names}") == ["a", "b", "c"]
    with pytest.raises(PackagingError, match="names 'a' twice"):
        parse_names("a,b,a")
    with pytest.raises(PackagingError, match="empty name"):
        parse_names("a,,b")


def _spec(name: str, dtype: str, shape: list[int]) -> TensorSpec:
    return TensorSpec(name=name, dtype=dtype, shape=shape)  # type: ignore[arg-type]


def test_one_logit_gets_sigmoid_and_probabilities_get_none() -> None:
    # GIVEN a binary model answering one logit per row, and another answering probabilities
    inputs = [_spec("x", "float32", [-1, 2])]
    logit = [_spec("score", "float32", [-1, 1])]
    proba = [_spec("label", "int64", [-1]), _spec("probabilities", "float32", [-1, 2])]
    # WHEN the processing is declared from their sample outputs
    binary, notes = declare(ProcessingRequest(threshold=0.3), inputs, logit, labels=["no", "yes"], feature_names=None,
                            sample_outputs={"score": np.array([[-2.0], [3.5]])})  # fmt: skip
    plain, _ = declare(ProcessingRequest(), inputs, proba, labels=["no", "yes"], feature_names=["a", "b"],
                       sample_outputs={"probabilities": np.array([[0.2, 0.8], [0.9, 0.1]])})  # fmt: skip
    # THEN the logit gets a sigmoid and the threshold, the probabilities no activation, and records their names
    assert binary is not None and binary.output is not None
    assert binary.output.output == "score" and binary.output.activation == "sigmoid"
    assert binary.output.threshold == 0.3 and any("activation sigmoid" in note for note in notes)
    assert plain is not None and plain.output is not None and plain.records is not None
    assert plain.output.output == "probabilities" and plain.output.activation == "none"
    assert plain.records.features == ["a", "b"] and plain.records.input == "x"


def test_explicit_activation_wins_and_spark_style_inputs_become_per_input_features() -> None:
    # GIVEN one model input per column (as Spark pipelines convert), probabilities out, and --sigmoid asked
    inputs = [_spec("age", "float32", [-1, 1]), _spec("city", "string", [-1, 1])]
    outputs = [_spec("prediction", "int64", [-1]), _spec("probability", "float32", [-1, 3])]
    declared, _ = declare(
        ProcessingRequest(activation="sigmoid", top_k=2), inputs, outputs, labels=["a", "b", "c"],
        feature_names=["age", "city"], sample_outputs={"probability": np.full((2, 3), 1 / 3)},
    )  # fmt: skip
    # THEN each feature is the input of its name and the asked activation is kept
    assert declared is not None and declared.records is not None and declared.output is not None
    assert declared.records.input is None and declared.records.features == ["age", "city"]
    assert declared.output.activation == "sigmoid" and declared.output.top_k == 2


@pytest.mark.parametrize(
    ("input_", "words"),
    [
        (_spec("img", "float32", [-1, 3, 224, 224]), "[-1, 3, 32, 32]"),
        (_spec("img", "float16", [-1, 3, 32, 32]), "takes float16"),
        (_spec("img", "float32", [-1, 32, 32, 3]), "layout="),
    ],
)
def test_an_image_pipeline_that_does_not_fit_its_input_is_refused(input_: TensorSpec, words: str) -> None:
    with pytest.raises(PackagingError) as caught:
        declare(ProcessingRequest(preprocess="image:size=32"), [input_], [_spec("y", "float32", [-1, 3])],
                labels=None, feature_names=None, sample_outputs={})  # fmt: skip
    assert caught.value.field == "preprocess.image" and words in caught.value.message
