"""The Keras REST API example's ``POST /predict`` with a multipart ``image`` field.

``/predict`` dispatches here only for ``multipart/form-data`` bodies; JSON keeps the simple
protocol. The answer is ``{"success": true, "predictions": [{"label", "probability"}, ...]}``,
top-k for the one input. Until the bundle declares image preprocessing, an encoded picture is
refused (415) and the field must hold the model's input for one instance as JSON (or text for a
string model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from modelfn.errors import InvalidRequest, UnprocessableInput
from modelfn.serving import codecs, multipart
from modelfn.serving.compat import class_probabilities, is_image, refuse_image, run_columns, text_instances, top_k
from modelfn.serving.responses import Response, json_response

if TYPE_CHECKING:
    from modelfn.serving.state import ModelState

FIELD = "image"


def predict(state: ModelState, body: bytes, headers: Mapping[str, str]) -> Response:
    """Decode the ``image`` field, run, answer the top-k classes."""
    bundle = state.require()
    found = [p for p in multipart.parse(body, headers) if p.name == FIELD]
    if len(found) != 1:
        raise InvalidRequest(f"send exactly one form field named {FIELD!r}", field=FIELD)
    part = found[0]
    if is_image(part.data, part.content_type):
        raise refuse_image(FIELD)
    if part.content_type == "text/plain":
        request = text_instances(part.data, bundle.manifest, field=FIELD)
    else:
        request = {"instances": [codecs.loads(part.data, field=FIELD)]}
    results = run_columns(bundle, request)
    scores = class_probabilities(bundle.manifest, results, field=FIELD, need_labels=False)
    if scores is None:
        raise UnprocessableInput("no output of this model holds class scores", field=FIELD)
    best = top_k(*scores)[0]
    return json_response({"success": True, "predictions": [{"label": k, "probability": p} for k, p in best]})
