#!/usr/bin/env bash
# Create a separate Python 3.11 environment that can run MXNet 1.9.1, the converter interpreter for
# `modelfn package ... --framework mxnet --python DIR/bin/python`.
#
# MXNet 1.9.1 (the last release) needs numpy<1.24 and onnx<1.16, which cannot share modelfn's own
# environment. The worker that runs inside it imports only modelfn.adapters.base and the MXNet
# adapter, which need numpy + msgspec (FrameworkInfo); onnxruntime is not needed there.
#
# Usage: scripts/mxnet-env.sh DIR        (idempotent: does nothing when DIR/bin/python imports mxnet)
set -euo pipefail

DIR="${1:?usage: $0 DIR}"
PYTHON="${MXNET_ENV_PYTHON:-python3.11}"
PACKAGES=(
  "mxnet==1.9.1"
  "numpy>=1.23.2,<1.24"   # 1.23.2 is the first with Python 3.11 wheels; mxnet uses np.bool etc. removed in 1.24
  "onnx>=1.14,<1.16"      # mxnet.onnx.export_model uses onnx.mapping, gone in 1.16
  "protobuf>=3.20.2,<5"   # what onnx 1.14/1.15 was built against
  "msgspec>=0.18"         # modelfn.bundle.manifest.FrameworkInfo, built by the adapter in the worker
)

if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c "import mxnet, msgspec" >/dev/null 2>&1; then
  echo "mxnet-env: $DIR already has mxnet $("$DIR/bin/python" -c 'import mxnet; print(mxnet.__version__)')"
  exit 0
fi

# The wheel ships libmxnet.so, OpenBLAS and libgfortran.so.3, but links the system's OpenMP runtime
# (libgomp.so.1) and quad-precision math (libquadmath.so.0, needed by that libgfortran).
libs="$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null || true)"
missing=()
grep -q 'libgomp\.so\.1' <<<"$libs" || missing+=(libgomp1)
grep -q 'libquadmath\.so\.0' <<<"$libs" || missing+=(libquadmath0)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "mxnet-env: missing system libraries; install: ${missing[*]} (Debian/Ubuntu package names)" >&2
    exit 1
  fi
fi

"$PYTHON" -m venv "$DIR"
"$DIR/bin/python" -m pip install -q "${PACKAGES[@]}"
"$DIR/bin/python" -c "import mxnet, numpy, onnx; print('mxnet-env: mxnet', mxnet.__version__, 'numpy', numpy.__version__, 'onnx', onnx.__version__)"
