"""Each container image's entry point, without a container engine.

For each Dockerfile: copy the build context its .dockerignore admits, run the same install script
its RUN line runs into a directory, then run its CMD (and HEALTHCHECK) from there against a signed
bundle and get a verified prediction. Only the bind address changes: 127.0.0.1 and a free port
instead of the image's 0.0.0.0:8080.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infra" / "docker"
X = (np.arange(8, dtype=np.float32).reshape(2, 4) / 10).tolist()


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage."""
    parsed = _all_instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(parsed) if op == "FROM")
    return parsed[last_from:]


def final_stage(dockerfile: Path) -> dict[str, Any]:
    """The final stage's ENV, USER, CMD and HEALTHCHECK command."""
    stage: dict[str, Any] = {"env": {}, "user": None, "cmd": None, "healthcheck": None}
    for op, args in instructions(dockerfile):
        if op == "ENV":
            stage["env"].update(dict(item.split("=", 1) for item in shlex.split(args)))
        elif op == "USER":
            stage["user"] = args
        elif op == "CMD":
            stage["cmd"] = json.loads(args)
        elif op == "HEALTHCHECK":
            stage["healthcheck"] = json.loads(args.split(" CMD ", 1)[1])
    return stage


def build_context(dockerfile: Path, dest: Path) -> Path:
    """Copy what ``<Dockerfile>.dockerignore`` admits (its ``!`` lines) from the repository root."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    for entry in (line[1:].rstrip("/") for line in ignore if line.startswith("!")):
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, dest / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / entry)
    return dest


def install(flavour: str, dockerfile: Path, tmp: Path) -> Path:
    """Run infra/docker/install.sh as the Dockerfile's RUN line does; returns the install directory."""
    run_lines = [args for op, args in _all_instructions(dockerfile) if op == "RUN" and "install.sh" in args]
    assert run_lines and f"install.sh {flavour} " in run_lines[0]
    context = build_context(dockerfile, tmp / "context")
    dest = tmp / "installed"
    subprocess.run(
        ["sh", str(context / "infra" / "docker" / "install.sh"), flavour, str(dest), str(context)],
        check=True, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, timeout=900,
    )  # fmt: skip
    return dest


def _all_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _rie_binary() -> Path:
    """aws-lambda-rie, which ships inside the aws-sam-cli wheel (dev extra)."""
    import platform

    import samcli

    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    binary = Path(samcli.__file__).parent / "local" / "rapid" / f"aws-lambda-rie-{arch}"
    assert binary.exists(), f"aws-lambda-rie not found at {binary}: install the dev extra (aws-sam-cli)"
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _local_address(argv: list[str], port: int) -> list[str]:
    """The CMD with its bind address replaced (the image listens on 0.0.0.0:8080)."""
    out = list(argv)
    out[out.index("--host") + 1] = "127.0.0.1"
    out[out.index("--port") + 1] = str(port)
    return out


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def serve_image(tmp_path: Path, local_published: Published) -> Iterator[Any]:
    """Start a Dockerfile's CMD from an install directory; yields a function (dockerfile, venv) -> base URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(dockerfile: Path, venv: Path) -> tuple[str, dict[str, str], int]:
        stage = final_stage(dockerfile)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELFN_", "PYTHON", "VIRTUAL_ENV"))}
        env.update({k: v.replace("$PATH", env["PATH"]) for k, v in stage["env"].items()})
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
        env.update(local_published.env, MODELFN_HOST="127.0.0.1", MODELFN_PORT=str(port))
        log = (tmp_path / f"serve-{port}.log").open("wb")
        argv = _local_address(stage["cmd"], port)
        processes.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if _get(f"{base}/v2/health/ready")[0] == 200:
                    return base, env, port
            except OSError:
                pass
            assert processes[-1].poll() is None, (tmp_path / f"serve-{port}.log").read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"not ready: {(tmp_path / f'serve-{port}.log').read_text()[-3000:]}")

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _predict(base: str) -> list[list[float]]:
    request = urllib.request.Request(
        f"{base}/predict", data=json.dumps({"instances": X}).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        predictions: list[list[float]] = json.loads(response.read())["predictions"]
    return predictions


def _check_served(base: str, env: dict[str, str], port: int, dockerfile: Path, venv: Path) -> None:
    # THEN the installed entry point serves the verified model ...
    np.testing.assert_allclose(_predict(base), tiny_onnx_expected(np.asarray(X, dtype=np.float32)), rtol=1e-5)
    # ... from the install directory, not from the source checkout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import modelfn; print(modelfn.__file__)"],
        capture_output=True, text=True, check=True, env=env, cwd=venv,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    # ... and the image's HEALTHCHECK command passes against it
    healthcheck = [part.replace("8080", str(port)) for part in final_stage(dockerfile)["healthcheck"]]
    assert subprocess.run(healthcheck, env=env, timeout=30, check=False).returncode == 0


def test_cpu_image_serves_a_verified_prediction(tmp_path: Path, serve_image: Any) -> None:
    # GIVEN what Dockerfile.cpu installs, in a directory
    dockerfile = DOCKER / "Dockerfile.cpu"
    venv = install("cpu", dockerfile, tmp_path)
    # WHEN its CMD runs against a signed bundle
    base, env, port = serve_image(dockerfile, venv)
    _check_served(base, env, port, dockerfile, venv)


def test_cuda_image_installs_onnxruntime_gpu_only_and_serves(tmp_path: Path, serve_image: Any) -> None:
    # GIVEN what Dockerfile.cuda installs, in a directory
    dockerfile = DOCKER / "Dockerfile.cuda"
    venv = install("cuda", dockerfile, tmp_path)
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    names = {item["name"].lower() for item in json.loads(listed)}
    # THEN only the GPU build of onnxruntime is there (both would overwrite each other's module)
    assert "onnxruntime-gpu" in names
    assert "onnxruntime" not in names
    # AND the base image's CUDA major is the one the onnxruntime-gpu wheel is built for
    metadata = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.requires('onnxruntime-gpu'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cuda_major = re.search(r"nvidia-cuda-runtime~=(\d+)", metadata)
    assert cuda_major is not None, metadata
    bases = [args for op, args in _all_instructions(dockerfile) if op == "FROM"]
    assert bases and all(f"nvidia/cuda:{cuda_major.group(1)}." in base and "cudnn" in base for base in bases)
    # WHEN its CMD runs here (no GPU: onnxruntime falls back to the CPU provider)
    base, env, port = serve_image(dockerfile, venv)
    _check_served(base, env, port, dockerfile, venv)


def test_lambda_image_handler_answers_in_the_runtime_emulator(tmp_path: Path, local_published: Published) -> None:
    from tests.handlers.events import http_event

    # GIVEN what Dockerfile.lambda copies into LAMBDA_TASK_ROOT, plus the runtime client its base image brings
    dockerfile = DOCKER / "Dockerfile.lambda"
    task_root = install("lambda", dockerfile, tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(task_root), "awslambdaric>=2.2"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    handler = final_stage(dockerfile)["cmd"]
    assert handler == ["modelfn.handlers.http.handler"]
    port, api_port = _free_port(), _free_port()
    # WHEN the emulator runs the CMD with only the task root on the path (python -S: no site-packages, so
    # modelfn and its dependencies can come from nowhere else)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELFN_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(local_published.env, PYTHONPATH=str(task_root), AWS_LAMBDA_FUNCTION_TIMEOUT="30")
    log = (tmp_path / "rie.log").open("wb")
    rie = subprocess.Popen(
        [
            str(_rie_binary()), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
            "--runtime-api-address", f"127.0.0.1:{api_port}", sys.executable, "-S", "-m", "awslambdaric", handler[0],
        ],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
        event = http_event("http_api_v2", "POST", "/predict", json.dumps({"instances": X}).encode())
        deadline, response = time.monotonic() + 60, None
        while response is None and time.monotonic() < deadline:
            try:
                request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
                with urllib.request.urlopen(request, timeout=60) as answer:
                    response = json.loads(answer.read())
            except (urllib.error.URLError, ConnectionError):
                assert rie.poll() is None, (tmp_path / "rie.log").read_text()[-3000:]
                time.sleep(0.2)
        # THEN the handler from the task root verifies the model and predicts
        assert response is not None and response["statusCode"] == 200, (tmp_path / "rie.log").read_text()[-3000:]
        np.testing.assert_allclose(
            json.loads(response["body"])["predictions"], tiny_onnx_expected(np.asarray(X, dtype=np.float32)), rtol=1e-5
        )
    finally:
        rie.terminate()
        rie.wait(10)
        log.close()


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda", "Dockerfile.lambda"])
def test_dockerfiles_run_as_non_root_with_pinned_bases(name: str) -> None:
    dockerfile = DOCKER / name
    bases = [args.split()[0] for op, args in _all_instructions(dockerfile) if op == "FROM"]
    # Every base is pinned to a release tag (never latest, never untagged)
    assert bases and all(":" in base and not base.endswith(":latest") for base in bases)
    stage = final_stage(dockerfile)
    if name == "Dockerfile.lambda":
        # Lambda runs the image as its own unprivileged user and ignores HEALTHCHECK
        assert stage["cmd"] == ["modelfn.handlers.http.handler"]
        return
    assert stage["user"] is not None and stage["user"].split(":")[0] not in ("0", "root")
    assert stage["cmd"] == ["modelfn", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert stage["healthcheck"] is not None and "/v2/health/ready" in " ".join(stage["healthcheck"])
