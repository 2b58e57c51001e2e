"""TorchServe custom handler (module-level entry point) for a TorchScript MLP."""

import json
import os

import torch

_m = None


def handle(data, context):  # type: ignore[no-untyped-def]
    global _m
    if _m is None:
        d = context.system_properties.get("model_dir")
        _m = torch.jit.load(os.path.join(d, "mlp.pt"))
        _m.eval()
    if data is None:
        return None
    out = []
    for row in data:
        b = row.get("body") or row.get("data")
        if isinstance(b, bytes | bytearray):
            b = json.loads(b)
        x = torch.tensor(b["data"], dtype=torch.float32).reshape(1, -1)
        with torch.inference_mode():
            out.append({"predictions": _m(x).tolist()})
    return out
