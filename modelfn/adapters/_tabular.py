"""What the tree and scikit-learn adapters share: output names and how their export is described."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelfn.adapters.base import ExportResult

if TYPE_CHECKING:
    from modelfn.bundle.manifest import FrameworkInfo

LABEL_OUTPUT, PROBA_OUTPUT, REGRESSION_OUTPUT = "label", "probabilities", "variable"


def tabular_result(
    onx: Any, framework: FrameworkInfo, *, classifier: bool, labels: list[str | int] | None
) -> ExportResult:
    """The export of a classifier (label + probabilities) or regressor (variable), with output notes."""
    outputs = [o.name for o in onx.graph.output]
    if classifier:
        notes = f"outputs {outputs}: {LABEL_OUTPUT} = predicted class, {PROBA_OUTPUT} = one column per label"
    else:
        notes = f"outputs {outputs}: {REGRESSION_OUTPUT} = predictions"
    return ExportResult(
        onnx_bytes=onx.SerializeToString(), framework=framework, labels=labels if classifier else None, notes=notes
    )
