"""MMS custom handler (module-level entry point): the exported Gluon symbol/params as a SymbolBlock."""

import json
import os

import numpy as np
from mxnet import gluon, nd

_net = None


def handle(data, context):  # type: ignore[no-untyped-def]
    global _net
    if _net is None:
        d = context.system_properties.get("model_dir")
        _net = gluon.SymbolBlock.imports(
            os.path.join(d, "mlp-symbol.json"), ["data"], os.path.join(d, "mlp-0000.params")
        )
    if data is None:
        return None
    out = []
    for row in data:
        b = row.get("body") or row.get("data")
        if isinstance(b, bytes | bytearray):
            b = json.loads(b)
        x = np.asarray(b["data"], dtype=np.float32).reshape(1, -1)
        out.append({"predictions": _net(nd.array(x)).asnumpy().tolist()})
    return out
