"""The Keras REST API example's ``POST /predict`` with a multipart ``image`` field.

``/predict`` dispatches here only for ``multipart/form-data`` bodies; JSON keeps the simple
protocol. The answer is ``{"success": true, "predictions": [{"label", "probability"}, ...]}``,
top-k for the one input. A bundle declaring image preprocessing decodes the picture in the field;
without it an encoded picture is refused (415) and the field must hold the model's input for one
instance as JSON (or text for a string model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from modelfn.errors import InvalidRequest
from modelfn.serving import codecs, multipart
from modelfn.serving.compat import is_image, run_columns, run_feeds, text_instances
from modelfn.serving.processed import image_feeds
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
        results = run_feeds(bundle, image_feeds([part.data], bundle.manifest, field=FIELD))
    elif part.content_type == "text/plain":
        results = run_columns(bundle, text_instances(part.data, bundle.manifest, field=FIELD))
    else:
        results = run_columns(bundle, {"instances": [codecs.loads(part.data, field=FIELD)]})
    from modelfn.processing.outputs import classify

    best = classify(results, bundle.manifest, field=FIELD)[0]
    return json_response({"success": True, "predictions": [{"label": k, "probability": p} for k, p in best]})
