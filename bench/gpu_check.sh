#!/usr/bin/env bash
# The CNN benchmark on a GPU: modelfn's Lambda path with MODELFN_PROVIDERS=cuda (IO binding) beside raw
# onnxruntime-gpu session.run on the same CUDA session, batch 1; prints each path's ratio to raw (goal <= 1.1x).
#
# Needs: an NVIDIA GPU, onnxruntime-gpu in the Python below (PYTHON, default .venv/bin/python) and the two ONNX
# models in bench/results/models/ (built here with torch when missing; on a machine without torch, build them
# elsewhere with `python bench/bench_large_tensors.py --build-only` and copy bench/results/models/ over).
# Writes bench/results/large_tensors_gpu.json. One command, bounded to 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" - <<'PYCHECK'
import sys
import onnxruntime as ort
providers = ort.get_available_providers()
if "CUDAExecutionProvider" not in providers:
    sys.exit(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider ({providers}): pip install onnxruntime-gpu")
print(f"onnxruntime {ort.__version__}, providers {providers}")
PYCHECK
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
exec timeout 300 "$PY" bench/bench_large_tensors.py --providers cuda --threads 0 --rounds 5 --iters 20 \
  --out large_tensors_gpu "$@"
