#!/usr/bin/env bash
# Install everything the test suite needs and run it: the README's test command, and what CI runs.
#   bash scripts/test.sh              # whole suite, framework tests included
#   bash scripts/test.sh -m "not slow" tests/serving   # any pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# torch first, pinned: the CPU wheel; any other version would pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
"${pip[@]}" -e '.[all,dev]'
# checkov pins older boto3/botocore/packaging than the dev extra, so it lives in its own venv
# (inside the ignored .venv/); tests/deploy/test_infra_checkov.py runs it from there.
[ -x .venv/checkov/bin/checkov ] || "$python" -m venv .venv/checkov
.venv/checkov/bin/python -m pip install --quiet --disable-pip-version-check 'checkov>=3.2,<4'

# Spark MLlib conversion needs a JVM at build time (never at run time).
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "warning: no java on PATH; install a Java 17 runtime for the Spark MLlib tests" >&2
  fi
fi

# MXNet converts in its own interpreter (it needs numpy<1.24); build it once when the script exists.
if [ -f scripts/mxnet-env.sh ]; then
  bash scripts/mxnet-env.sh .venv-mxnet
  export MODELFN_TEST_MXNET_PYTHON="$PWD/.venv-mxnet/bin/python"
fi

# serverless.yml tooling (osls, serverless-offline) from the committed lock file, when it changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    npm ci --legacy-peer-deps --no-audit --no-fund
  else
    echo "warning: no npm on PATH; install Node.js 20+ for the serverless.yml tests" >&2
  fi
fi

# Lint and types first: cheap, and a failure here is a failure of the run.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

exec .venv/bin/python -m pytest "$@"
