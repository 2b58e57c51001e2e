#!/bin/sh
# Install modelfn for one image flavour; the Dockerfiles run this, and so do the image tests
# (no container engine there: they run the same script into a directory, then the image's CMD).
#   install.sh cpu    DEST SRC   virtualenv at DEST with modelfn[cli,images] (onnxruntime, CPU; Pillow for image bundles)
#   install.sh cuda   DEST SRC   virtualenv at DEST with modelfn[cli,images], onnxruntime-gpu instead of onnxruntime
#   install.sh lambda DEST SRC   `pip install --target DEST` of modelfn[images] (the Lambda base image brings the runtime client)
set -eu
flavour=$1
dest=$2
src=${3:-.}
python=${PYTHON:-python3}
# onnxruntime-gpu ships the same `onnxruntime` module as onnxruntime: the two must never share an
# environment (whichever installs last overwrites the other's files, and uninstalling one breaks both).
ORT_GPU=${ORT_GPU:-onnxruntime-gpu==1.31.1}

case "$flavour" in
  cpu)
    "$python" -m venv "$dest"
    "$dest/bin/python" -m pip install --disable-pip-version-check --quiet "$src[cli,images]"
    ;;
  cuda)
    "$python" -m venv "$dest"
    pip="$dest/bin/python -m pip install --disable-pip-version-check --quiet"
    # modelfn itself without its dependencies, then its dependency list with onnxruntime swapped.
    $pip --no-deps "$src"
    "$dest/bin/python" "$src/infra/docker/requirements.py" --extra cli --extra images --replace "onnxruntime=$ORT_GPU" \
      > "$dest/requirements-cuda.txt"
    $pip -r "$dest/requirements-cuda.txt"
    ;;
  lambda)
    "$python" -m pip install --disable-pip-version-check --quiet --target "$dest" "$src[images]"
    ;;
  *)
    echo "install.sh: unknown flavour '$flavour' (cpu, cuda, lambda)" >&2
    exit 2
    ;;
esac
