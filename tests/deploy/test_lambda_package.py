"""The slim Lambda zip: built once per session with pip (PyPI, pip's cache), then checked and served.

The serving test unpacks the zip and runs it the way the Lambda python3.12 runtime does: a fresh
python3.12 with an empty site-packages, the unpacked zip first on ``PYTHONPATH`` and, after it, a
directory holding only what the runtime itself provides (boto3, awslambdaric), inside the real
Runtime Interface Emulator, with the working directory set to the unpacked zip (Lambda's
``/var/task``). So a pruning rule that breaks the function fails here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfn.deploy.lambda_files import ZIP_DATE_TIME
from modelfn.deploy.lambda_package import (
    LAMBDA_RUNTIMES,
    LambdaPackage,
    build_lambda_zip,
    pip_command,
    runtime_requirements,
)
from modelfn.deploy.prune import RULES, check_kept_imports
from modelfn.emulate.lambda_rie import LambdaEmulator
from modelfn.errors import ConfigError, PackagingError
from tests.batch.s3_events import body, keys, put, sqs_of
from tests.fixtures.bundles import Published
from tests.fixtures.models import tiny_onnx_expected
from tests.handlers.events import http_event

MB = 1_000_000
UNZIPPED_GOAL = 110 * MB
ZIPPED_GOAL = 40 * MB
FORBIDDEN_TOP_LEVEL = ("torch", "sklearn", "tensorflow", "keras", "onnx", "skl2onnx", "tf2onnx", "onnxmltools",
                       "typer", "rich", "click", "uvicorn", "fastapi", "starlette", "pydantic", "pydantic_core",
                       "boto3", "botocore", "s3transfer", "google", "sympy", "pandas")  # fmt: skip
HOST_ARCH = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


def _python(version: str) -> Path:
    """An interpreter of ``version`` (pyenv's installs first: its shims refuse versions not selected)."""
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [Path(p) / f"python{version}" for p in os.get_exec_path()]
    for candidate in candidates:
        if candidate.is_file():
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
            if probe.returncode == 0 and probe.stdout.decode().strip() == str(tuple(map(int, version.split(".")))):
                return candidate
    pytest.fail(f"no python{version} interpreter found (pyenv install {version})")


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> LambdaPackage:
    return build_lambda_zip(tmp_path_factory.mktemp("lambda") / "function.zip", python_version="3.12")


@pytest.fixture(scope="session")
def unpacked(package: LambdaPackage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(root)
    return root


@pytest.fixture(scope="session")
def runtime312(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python3.12 of a fresh venv with nothing installed, a directory with only boto3 + awslambdaric for cp312)."""
    base = tmp_path_factory.mktemp("runtime312")
    subprocess.run([_python("3.12"), "-m", "venv", "--without-pip", base / "venv"], check=True)
    provided = base / "var-runtime"
    command = pip_command(provided, "3.12", HOST_ARCH, LAMBDA_RUNTIMES["3.12"].glibc, ["boto3", "awslambdaric"])
    subprocess.run([*command, "--no-warn-conflicts", "--quiet"], check=True)
    return base / "venv" / "bin" / "python", provided


def _zip_env(unpacked: Path, provided: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, **extra, "PYTHONPATH": f"{unpacked}{os.pathsep}{provided}", "PYTHONNOUSERSITE": "1"}


@contextlib.contextmanager
def _emulator(
    handler: str, unpacked: Path, runtime: tuple[Path, Path], env: dict[str, str], log: Path
) -> Iterator[LambdaEmulator]:
    """aws-lambda-rie running ``python -m awslambdaric <handler>`` from the unpacked zip, in a clean environment."""
    python, provided = runtime
    with (
        log.open("wb") as sink,
        LambdaEmulator(
            handler, env=_zip_env(unpacked, provided, env), python=python, cwd=unpacked, inherit_env=False, log=sink
        ) as rie,
    ):
        yield rie


@pytest.fixture
def emulator(
    unpacked: Path, runtime312: tuple[Path, Path], s3_published: Published, tmp_path: Path
) -> Iterator[LambdaEmulator]:
    with _emulator("http", unpacked, runtime312, s3_published.env, tmp_path / "rie.log") as rie:
        yield rie


# --- built zip ------------------------------------------------------------------------------


@pytest.mark.slow
def test_zip_meets_the_size_goals(package: LambdaPackage) -> None:
    # GIVEN the default build (python3.12, x86_64)
    # THEN it fits the goals, well inside Lambda's limits, and says what each rule saved
    assert package.runtime == "python3.12"
    assert package.unzipped_bytes <= UNZIPPED_GOAL, package.unzipped_bytes
    assert package.zipped_bytes <= ZIPPED_GOAL, package.zipped_bytes
    assert package.fits_direct_upload
    assert list(package.pruned_bytes) == [rule.name for rule in RULES]
    assert package.pruned_bytes["onnxruntime-c-api"] > 20 * MB
    assert package.pruned_bytes["modelfn-build-time"] > 0
    assert package.zipped_bytes == package.path.stat().st_size
    with zipfile.ZipFile(package.path) as archive:
        assert sum(info.file_size for info in archive.infolist()) == package.unzipped_bytes
    assert "--python-version" in package.pip_command and "3.12" in package.pip_command


@pytest.mark.slow
def test_zip_holds_the_run_time_set_and_nothing_build_time(package: LambdaPackage) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names}
    # THEN the run-time stack is there, built for CPython 3.12 on x86_64 ...
    for needed in ("onnxruntime", "numpy", "orjson", "msgspec", "mangum", "cryptography", "aws_lambda_powertools"):
        assert needed in top
    assert any(n.startswith("onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-x86_64") for n in names)
    assert "modelfn/handlers/http.py" in names and "modelfn/serving/asgi.py" in names
    # ... and no framework, converter, CLI, docs stack or runtime-provided SDK
    assert sorted(top.intersection(FORBIDDEN_TOP_LEVEL)) == []
    assert not [n for n in names if n.startswith(("modelfn/adapters/", "modelfn/commands/", "modelfn/deploy/"))]
    assert not {"modelfn/cli.py", "modelfn/packaging.py", "modelfn/parity.py"}.intersection(names)
    # ... nor what the pruning rules drop
    assert not [n for n in names if "libonnxruntime.so" in n or n.endswith(".pyi") or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("numpy/f2py/", "numpy/typing/", "onnxruntime/transformers/", "bin/"))]


@pytest.mark.slow
def test_zip_is_deterministic(tmp_path: Path) -> None:
    # GIVEN the same inputs built twice, in different places, one after the other
    first = build_lambda_zip(tmp_path / "first.zip", python_version="3.12")
    again = build_lambda_zip(tmp_path / "again.zip", python_version="3.12")
    # THEN the bytes are identical: sorted entries, fixed timestamps, fixed modes
    with zipfile.ZipFile(first.path) as one, zipfile.ZipFile(again.path) as two:
        differing = [i.filename for i in one.infolist() if i.CRC != two.getinfo(i.filename).CRC]
        infos = one.infolist()
    assert differing == []
    assert hashlib.sha256(again.path.read_bytes()).digest() == hashlib.sha256(first.path.read_bytes()).digest()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {ZIP_DATE_TIME}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}


# --- served from the zip alone --------------------------------------------------------------


@pytest.mark.slow
def test_zip_alone_imports_the_run_time_stack(unpacked: Path, runtime312: tuple[Path, Path]) -> None:
    python, provided = runtime312
    # GIVEN a fresh python3.12 seeing only the unpacked zip and the runtime-provided packages
    script = (
        "import importlib, json, sys\n"
        "mods = ['modelfn.serving.asgi', 'modelfn.loader', 'modelfn.store.s3', 'onnxruntime', 'numpy', 'orjson',\n"
        "        'msgspec', 'mangum', 'cryptography.hazmat.primitives.asymmetric.ec', 'aws_lambda_powertools']\n"
        "found = {m: importlib.import_module(m).__file__ for m in mods}\n"
        "missing = []\n"
        "for name in ('fastapi', 'pydantic', 'typer', 'rich', 'onnx', 'google.protobuf', 'modelfn.packaging'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        missing.append(name)\n"
        "print(json.dumps({'version': sys.version_info[:2], 'found': found, 'missing': missing}))\n"
    )
    done = subprocess.run(
        [python, "-c", script], cwd=unpacked, env=_zip_env(unpacked, provided, {}), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # THEN every run-time module comes from the zip, and the build-time/docs stacks are absent
    assert report["version"] == [3, 12]
    assert all(path.startswith(str(unpacked)) for path in report["found"].values()), report["found"]
    assert report["missing"] == ["fastapi", "pydantic", "typer", "rich", "onnx", "google.protobuf", "modelfn.packaging"]


@pytest.mark.slow
def test_zip_serves_a_prediction_in_the_lambda_emulator(emulator: LambdaEmulator, s3_published: Published) -> None:
    # GIVEN the zip's handler, which verified and loaded the model from S3 (moto_server) in its init phase
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    body = json.dumps({"instances": x.tolist()}).encode()
    for source in ("http_api_v2", "apigw_rest_v1"):
        # WHEN a prediction request arrives through a front door's event shape
        response = emulator.invoke(
            http_event(source, "POST", "/predict", body, headers={"content-type": "application/json"})
        )
        # THEN the model answers
        assert response["statusCode"] == 200, response
        np.testing.assert_allclose(
            json.loads(response["body"])["predictions"], tiny_onnx_expected(x), rtol=1e-5, atol=1e-6
        )
    ready = emulator.invoke(http_event("http_api_v2", "GET", "/v2/health/ready"))
    assert ready["statusCode"] == 200 and json.loads(ready["body"])["name"] == s3_published.name
    # AND the OpenAPI pages, whose FastAPI is not in the zip, answer a JSON 404 instead of crashing
    docs = emulator.invoke(http_event("http_api_v2", "GET", "/docs"))
    assert docs["statusCode"] == 404, docs
    assert "FastAPI" in json.loads(docs["body"])["error"]
    bad = emulator.invoke(http_event("http_api_v2", "POST", "/predict", b"{not json"))
    assert bad["statusCode"] == 400


@pytest.mark.slow
def test_zip_scores_a_storage_event_in_the_lambda_emulator(
    unpacked: Path, runtime312: tuple[Path, Path], s3_published: Published, s3_bucket: str, tmp_path: Path
) -> None:
    # GIVEN the zip's storage-event handler (SQS delivery: Powertools' batch utilities) and a new JSONL object
    env = {**s3_published.env, "MODELFN_OUTPUT_URL": f"s3://{s3_bucket}/results/"}
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    rows = b"".join(json.dumps({"x": row}).encode() + b"\n" for row in x.tolist())
    obj = put(s3_bucket, "incoming/rows.jsonl", rows)
    with _emulator("storage_event", unpacked, runtime312, env, tmp_path / "rie.log") as rie:
        # WHEN the object's notification arrives
        response = rie.invoke(sqs_of(obj))
    # THEN no record failed and the predictions were written under the output prefix, nothing else needed
    assert response == {"batchItemFailures": []}, response
    written = [k for k in keys(s3_bucket, "results/") if k.endswith(".jsonl")]
    assert len(written) == 1
    lines = [json.loads(line) for line in body(s3_bucket, written[0]).splitlines()]
    assert len(lines) == 2


# --- other targets and refusals -------------------------------------------------------------


@pytest.mark.slow
def test_bytecode_is_compiled_for_var_task_and_used(runtime312: tuple[Path, Path], tmp_path: Path) -> None:
    python, provided = runtime312
    # GIVEN a package precompiled with a python3.12
    built = build_lambda_zip(tmp_path / "pyc.zip", python_version="3.12", bytecode=_python("3.12"))
    root = tmp_path / "task"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(root)
    assert (root / "modelfn" / "__pycache__" / "loader.cpython-312.pyc").is_file()
    assert built.unzipped_bytes <= UNZIPPED_GOAL and built.zipped_bytes <= ZIPPED_GOAL
    # WHEN its modules are imported with bytecode writes off (Lambda's /var/task is read-only), after
    # a source file was changed behind the shipped bytecode
    (root / "modelfn" / "_version.py").write_text('__version__ = "edited"\n')
    script = (
        "import marshal, modelfn._version as v\n"
        "code = marshal.loads(open('modelfn/__pycache__/loader.cpython-312.pyc', 'rb').read()[16:])\n"
        "print(code.co_filename, v.__version__ != 'edited')\n"
    )
    env = {**_zip_env(root, provided, {}), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([python, "-c", script], cwd=root, env=env, capture_output=True, text=True, check=True)
    # THEN the shipped bytecode is what runs (unchecked-hash: no source reads), and it names /var/task paths
    assert done.stdout.split() == ["/var/task/modelfn/loader.py", "True"]


def test_bytecode_interpreter_must_match_the_runtime(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        build_lambda_zip(tmp_path / "f.zip", python_version="3.12", bytecode=_python("3.13"))
    assert refused.value.field == "bytecode" and "3.13" in refused.value.message


def test_kept_code_importing_pruned_code_is_refused(tmp_path: Path) -> None:
    # GIVEN a package tree whose handler lazily imports the build-time packaging module
    handlers = tmp_path / "modelfn" / "handlers"
    handlers.mkdir(parents=True)
    (tmp_path / "modelfn" / "__init__.py").write_text("")
    (handlers / "__init__.py").write_text("")
    (handlers / "ok.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import modelfn.cli\n")
    check_kept_imports(tmp_path)  # a TYPE_CHECKING import never runs: accepted
    (handlers / "bad.py").write_text("def f():\n    from ..adapters import registry\n")
    # WHEN the package is checked, THEN the refusal names the file, the module and the rule
    with pytest.raises(PackagingError) as refused:
        check_kept_imports(tmp_path)
    assert "modelfn/handlers/bad.py imports modelfn.adapters" in refused.value.message
    assert "modelfn-build-time" in refused.value.message


@pytest.mark.slow
def test_arm64_zip_holds_aarch64_libraries(tmp_path: Path) -> None:
    # GIVEN an arm64 build made on whatever machine runs the tests
    built = build_lambda_zip(tmp_path / "arm64.zip", python_version="3.12", arch="arm64")
    with zipfile.ZipFile(built.path) as archive:
        name = next(n for n in archive.namelist() if n.startswith("onnxruntime/capi/onnxruntime_pybind11_state"))
        header = archive.read(name)[:20]
    # THEN the native binding is an aarch64 ELF (e_machine 183) and the goals still hold
    assert "aarch64" in name
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183
    assert built.unzipped_bytes <= UNZIPPED_GOAL and built.zipped_bytes <= ZIPPED_GOAL


@pytest.mark.slow
def test_python311_with_a_manylinux2014_onnxruntime_pin_serves(local_published: Published, tmp_path: Path) -> None:
    # GIVEN the python3.11 package with the pin the refusal suggests (glibc <= 2.26 wheels only)
    built = build_lambda_zip(
        tmp_path / "py311.zip", python_version="3.11", onnxruntime="onnxruntime==1.16.3", extras=["numpy<2"]
    )
    assert built.runtime == "python3.11" and "onnxruntime==1.16.3" in built.requirements
    assert built.unzipped_bytes <= UNZIPPED_GOAL and built.zipped_bytes <= ZIPPED_GOAL
    root = tmp_path / "task"
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(root)
    # WHEN a fresh python3.11 imports the HTTP handler from it (init: verify + load) and gets a request
    script = (
        "import json, modelfn.handlers.http as h, onnxruntime\n"
        "from modelfn.invoke import LocalLambdaContext, http_api_event\n"
        "r = h.handler(http_api_event(b'{\"instances\": [[1, 2, 3, 4]]}'), LocalLambdaContext())\n"
        "print(json.dumps([onnxruntime.__version__, r['statusCode'], json.loads(r['body'])]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(local_published.env, PYTHONPATH=str(root), PYTHONNOUSERSITE="1")
    done = subprocess.run([_python("3.11"), "-S", "-c", script], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # THEN the pinned onnxruntime serves the model
    version, status, payload = json.loads(done.stdout.splitlines()[-1])
    assert (version, status) == ("1.16.3", 200)
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    np.testing.assert_allclose(payload["predictions"], tiny_onnx_expected(x), rtol=1e-5, atol=1e-6)


def test_python311_is_refused_with_the_glibc_reason(tmp_path: Path) -> None:
    # WHEN a python3.11 package is asked for without an onnxruntime pin
    with pytest.raises(ConfigError) as refused:
        build_lambda_zip(tmp_path / "f.zip", python_version="3.11")
    # THEN the refusal names the runtime's glibc and the wheels onnxruntime ships, and nothing is written
    assert refused.value.field == "python_version"
    assert "glibc 2.26" in refused.value.message and "manylinux_2_28" in refused.value.message
    assert not (tmp_path / "f.zip").exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [({"python_version": "3.9"}, "python_version"), ({"arch": "ppc64le"}, "arch"), ({"extras": ["boto3"]}, "extras"),
     ({"extras": ["not a requirement!"]}, "extras"), ({"onnxruntime": "numpy==2.0"}, "onnxruntime")],
)  # fmt: skip
def test_bad_options_are_refused_by_name(tmp_path: Path, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build_lambda_zip(tmp_path / "f.zip", **options)
    assert refused.value.field == field


def test_requirements_drop_what_the_runtime_or_docs_bring_and_apply_the_pin() -> None:
    # GIVEN modelfn's run-time dependencies, an onnxruntime pin and an extra
    chosen = runtime_requirements("3.11", "x86_64", extras=["pyarrow>=15"], onnxruntime="onnxruntime==1.16.3")
    names = [spec.split("=")[0].split(">")[0].split("<")[0] for spec in chosen]
    # THEN boto3 (the runtime's) and fastapi (docs only) are left out, the pin replaces onnxruntime's range
    assert "boto3" not in names and "fastapi" not in names
    assert "onnxruntime==1.16.3" in chosen and names.count("onnxruntime") == 1
    assert chosen[-1] == "pyarrow>=15" and "numpy>=1.26" in chosen


@pytest.mark.slow
def test_pip_failure_is_a_packaging_error_with_pips_reason(tmp_path: Path) -> None:
    # WHEN an extra cannot be satisfied for the target (no numpy below 1.0 has a cp312 wheel)
    with pytest.raises(PackagingError) as failed:
        build_lambda_zip(tmp_path / "f.zip", extras=["numpy<1.0"])
    # THEN the error names the runtime and carries pip's own reason; no zip is left behind
    assert "python3.12" in failed.value.message and "numpy" in failed.value.message
    assert not list(tmp_path.iterdir())
