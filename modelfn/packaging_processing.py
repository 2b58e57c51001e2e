"""What ``modelfn package`` declares as the bundle's processing: image/records/output, from flags or a file.

The flags (``--preprocess``, ``--feature-names``, ``--labels``, ``--top-k``, ``--threshold``,
``--softmax``/``--sigmoid``) are collected in a ``ProcessingRequest`` before conversion; once the
model's schema and its outputs on the sample are known, ``declare`` turns them into the
``Processing`` signed into the manifest. Defaults:

- ``image``'s input is the model's only 4-D input;
- ``records`` is declared whenever feature names are known (``--feature-names``, scikit-learn
  ``feature_names_in_``, Spark input columns, XGBoost/LightGBM names): harmless for tensor clients;
- ``output`` is declared whenever labels are known, on the output holding one score per label;
  its activation is ``softmax`` (``sigmoid`` for one score) unless the sample scores already are
  probabilities. ``--no-classify`` leaves it out.

Build time only; every error is a ``PackagingError`` naming the flag or key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from modelfn.bundle.processing import CHANNELS, ImageProcessing, Processing
from modelfn.errors import PackagingError
from modelfn.processing.outputs import is_distribution
from modelfn.processing_flags import PLACEHOLDER, convert, requested_tables

if TYPE_CHECKING:
    from modelfn.bundle.manifest import TensorSpec
    from modelfn.bundle.processing import OutputProcessing, RecordProcessing

Activation = Literal["none", "softmax", "sigmoid"]


@dataclasses.dataclass(frozen=True)
class ProcessingRequest:
    """The processing flags of ``modelfn package`` (None: decide from the model)."""

    preprocess: str | None = None
    """A ``.json``/``.toml`` file holding a ``Processing``, or ``image:key=value,...`` / ``records``."""
    feature_names: list[str] | None = None
    labels: list[str | int] | None = None
    top_k: int | None = None
    threshold: float | None = None
    activation: Activation | None = None
    classify: bool | None = None
    """Declare output processing: None = when labels are known."""
    reference_preprocess: str | None = None
    """``module:function`` taking a PIL image and returning one image's tensor (parity of the image pipeline)."""

    def image_spec(self) -> ImageProcessing | None:
        """The requested image pipeline, its input possibly a placeholder until ``declare`` (checked early)."""
        raw = requested_tables(self.preprocess).get("image")
        return None if raw is None else _image(raw, PLACEHOLDER)


def declare(
    request: ProcessingRequest,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    labels: list[str | int] | None,
    feature_names: list[str] | None,
    sample_outputs: Mapping[str, Any],
) -> tuple[Processing | None, list[str]]:
    """The processing to sign into the manifest, and notes saying what was decided and why."""
    requested = requested_tables(request.preprocess)
    notes: list[str] = []
    image = None
    if "image" in requested:
        image = _image(requested["image"], _image_input(requested["image"], inputs))
        _check_image(image, inputs)
    records = _records(requested, request.feature_names or feature_names, inputs, image is not None)
    output = _output(requested, request, outputs, labels, sample_outputs, notes)
    if image is None and records is None and output is None:
        return None, notes
    try:
        return Processing(image=image, records=records, output=output), notes
    except ValueError as exc:
        raise PackagingError(f"--preprocess: {exc}", field="preprocess") from exc


def _image(raw: Any, input_name: str) -> ImageProcessing:
    table = {**raw, "input": raw.get("input", input_name)} if isinstance(raw, dict) else raw
    if isinstance(table, dict):
        channels = CHANNELS.get(str(table.get("color", "RGB")), 3)
        for key in ("mean", "std"):  # one value stands for every channel
            values = table.get(key)
            if isinstance(values, list) and len(values) == 1 and channels > 1:
                table[key] = values * channels
    spec: ImageProcessing = convert(table, ImageProcessing, " image", strict=False)
    return spec


def _image_input(raw: Any, inputs: Sequence[TensorSpec]) -> str:
    """The given ``input``, else the model's only 4-D input."""
    if isinstance(raw, dict) and raw.get("input") not in (None, PLACEHOLDER):
        return str(raw["input"])
    candidates = [spec.name for spec in inputs if len(spec.shape) == 4]
    if len(candidates) != 1:
        raise PackagingError(
            f"--preprocess image: the model has {len(candidates)} 4-D inputs ({', '.join(candidates) or 'none'});"
            " name one with input=",
            field="preprocess.image.input",
        )
    return candidates[0]


def _check_image(image: ImageProcessing, inputs: Sequence[TensorSpec]) -> None:
    """The pipeline's tensors fit the input it feeds: rank 4, the fixed dims, the dtype."""
    spec = next((s for s in inputs if s.name == image.input), None)
    if spec is None:
        raise PackagingError(
            f"--preprocess image: input {image.input!r} is not a model input; inputs are {[s.name for s in inputs]}",
            field="preprocess.image.input",
        )
    made = tuple(max(d, 1) for d in image.tensor_shape())
    if not spec.is_compatible(made) or spec.dtype != image.dtype:
        raise PackagingError(
            f"--preprocess image makes {image.dtype} {image.layout} tensors {image.tensor_shape()}; input"
            f" {spec.name!r} takes {spec.dtype} {spec.shape} (set size=, layout= or dtype= to match)",
            field="preprocess.image",
        )


def _records(
    requested: Mapping[str, Any], names: list[str] | None, inputs: Sequence[TensorSpec], image: bool
) -> RecordProcessing | None:
    """Explicit records, or automatic ones whenever feature names are known and fit the inputs."""
    from modelfn.bundle.processing import RecordProcessing

    explicit = requested.get("records")
    if explicit is None and (image or not names):
        return None
    table = dict(explicit or {})
    names = list(table.get("features") or names or [])
    if not names:
        raise PackagingError(
            "--preprocess records needs feature names: --feature-names, or a model that records them"
            " (scikit-learn feature_names_in_, Spark input columns, XGBoost/LightGBM feature names)",
            field="feature_names",
        )
    by_name = {spec.name: spec for spec in inputs}
    if "input" not in table and all(name in by_name for name in names) and len(inputs) == len(names):
        per_input: RecordProcessing = convert({"features": names}, RecordProcessing, " records")
        return per_input  # one model input per feature (Spark)
    target = table.get("input") or (inputs[0].name if len(inputs) == 1 else None)
    spec = by_name.get(str(target)) if target else None
    width = spec.shape[1] if spec is not None and len(spec.shape) == 2 else None
    if spec is None or width is None or width not in (-1, len(names)):
        if explicit is None:
            return None  # names that do not fit are not declared automatically
        raise PackagingError(
            f"--feature-names: {len(names)} features do not fit the model inputs"
            f" {[(s.name, s.shape) for s in inputs]}; records need one [-1, {len(names)}] input or one input per name",
            field="feature_names",
        )
    columns: RecordProcessing = convert({"features": names, "input": spec.name}, RecordProcessing, " records")
    return columns


def _output(
    requested: Mapping[str, Any],
    request: ProcessingRequest,
    outputs: Sequence[TensorSpec],
    labels: list[str | int] | None,
    sample_outputs: Mapping[str, Any],
    notes: list[str],
) -> OutputProcessing | None:
    from modelfn.bundle.processing import OutputProcessing

    table = dict(requested.get("output") or {})
    asked = (
        bool(table)
        or request.classify
        or any(v is not None for v in (request.top_k, request.threshold, request.activation))
    )
    if request.classify is False or (not asked and not labels):
        return None
    if not labels:
        raise PackagingError(
            "output processing needs class labels: --labels FILE, or a classifier that records them", field="labels"
        )
    required = asked or request.labels is not None  # labels given on purpose must fit an output
    name = table.get("output") or _score_output(outputs, labels, sample_outputs, required=required)
    if name is None:
        notes.append(f"no output holds one score per label ({len(labels)}); output processing not declared")
        return None
    scores = sample_outputs.get(name)
    if "activation" not in table:
        table["activation"] = request.activation or _activation(scores, notes, name)
    if request.top_k is not None:
        if request.top_k > len(labels):
            raise PackagingError(f"--top-k {request.top_k} is above the {len(labels)} labels", field="top_k")
        table["top_k"] = request.top_k
    table.setdefault("top_k", min(5, len(labels)))
    if request.threshold is not None:
        if len(labels) != 2:
            raise PackagingError(f"--threshold applies to binary classifiers; this one has {len(labels)} labels",
                                 field="threshold")  # fmt: skip
        table["threshold"] = request.threshold
    spec: OutputProcessing = convert({**table, "output": name}, OutputProcessing, " output")
    return spec


def _score_output(
    outputs: Sequence[TensorSpec], labels: list[str | int], sample_outputs: Mapping[str, Any], *, required: bool
) -> str | None:
    """The float output with one score per label (``[-1, k]``; ``[-1, 1]``/``[-1]`` for two labels)."""
    import numpy as np

    found = []
    for spec in outputs:
        value = sample_outputs.get(spec.name)
        array = np.asarray(value) if value is not None else None
        width = spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else None
        if width is None and array is not None and array.ndim == 2:
            width = array.shape[1]
        if not spec.dtype.startswith("float") or len(spec.shape) not in (1, 2):
            continue
        if width == len(labels) or (len(labels) == 2 and (len(spec.shape) == 1 or width == 1)):
            found.append(spec.name)
    preferred = [n for n in found if re.search("prob", n)] or found
    if preferred:
        return preferred[0]
    if required:
        raise PackagingError(
            f"no model output holds one score per label ({len(labels)} labels); outputs are"
            f" {[(s.name, s.dtype, s.shape) for s in outputs]}; name one in the output table of --preprocess",
            field="labels",
        )
    return None


def _activation(scores: Any, notes: list[str], name: str) -> Activation:
    """None when the sample scores already are probabilities; else softmax (sigmoid for one score per row)."""
    import numpy as np

    if scores is None:
        notes.append(f"output {name!r}: no sample scores to judge; activation none (pass --softmax/--sigmoid)")
        return "none"
    array = np.asarray(scores, dtype=np.float64)
    single = array.ndim == 1 or array.shape[-1] == 1
    in_range = bool(np.all((array >= 0) & (array <= 1)))
    if in_range and (single or is_distribution(array)):
        notes.append(f"output {name!r}: sample scores are probabilities; activation none")
        return "none"
    chosen: Activation = "sigmoid" if single else "softmax"
    notes.append(f"output {name!r}: sample scores are not probabilities (logits); activation {chosen}")
    return chosen
