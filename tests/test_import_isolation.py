"""Run-time entry points never import build-time code (ARCHITECTURE.md rules; STYLE.md habit 1).

Each check runs in a fresh interpreter so nothing imported by the test session leaks in. No
timings here: import cost is measured in bench/bench_imports.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import modelfn
from tests.fixtures.bundles import Published
from tests.fixtures.keys import SigningKey

BUILD_TIME = ("torch", "sklearn", "tensorflow", "keras", "skl2onnx", "onnxmltools", "tf2onnx", "pyspark",
              "xgboost", "lightgbm", "onnx", "pandas", "modelfn.adapters", "modelfn.packaging")  # fmt: skip
SLOW_FRAMEWORK = ("fastapi", "starlette", "uvicorn", "typer", "pydantic")


def _modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize(
    "entry",
    [
        "import modelfn.handlers.http",
        "import modelfn.serving.asgi, modelfn.serving.state",
        "import modelfn.loader, modelfn.runtime.onnx_session",
        "import modelfn.container, modelfn.handlers._snapstart",
        "import modelfn.serving.batching",  # container adaptive batching
        "import modelfn.batch.runner, modelfn.batch.spark_engine, modelfn.commands.batch",  # Spark, pandas: lazy
        "import modelfn.bundle.encryption, modelfn.signing.kms",  # decrypting an encrypted bundle at load
    ],
)
def test_run_time_entry_points_import_no_build_time_code(entry: str, tmp_path: object) -> None:
    import os

    # GIVEN an environment pointing at an empty store (the handler still imports and reports not-ready)
    env = {**os.environ, "MODELFN_STORE_URL": str(tmp_path), "MODELFN_MODEL_NAME": "absent"}
    modules = _modules_after(entry, env)
    assert _loaded(modules, BUILD_TIME) == []


def test_lambda_handler_keeps_fastapi_and_pydantic_off_the_inference_path(local_published: Published) -> None:
    import os

    # GIVEN a real signed model: the import verifies and loads it, then one request is served
    code = (
        "import modelfn.handlers.http as h\n"
        "from modelfn.invoke import LocalLambdaContext, http_api_event\n"
        "r = h.handler(http_api_event(b'{\"instances\": [[1, 2, 3, 4]]}'), LocalLambdaContext())\n"
        "assert r['statusCode'] == 200, r"
    )
    modules = _modules_after(code, {**os.environ, **local_published.env})
    # THEN neither FastAPI's stack nor pydantic was imported on the way
    assert _loaded(modules, SLOW_FRAMEWORK) == []
    # AND no event loop either: the request was answered without Mangum's ASGI cycle or asyncio
    assert _loaded(modules, ("mangum", "asyncio")) == []
    # AND on Lambda, with Powertools' JSON logger and EMF metrics on, still neither (nor prometheus-client)
    on_lambda = {**os.environ, **local_published.env, "AWS_LAMBDA_FUNCTION_NAME": "modelfn-http"}
    modules = _modules_after(code, on_lambda)
    assert {"aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"} <= modules
    assert _loaded(modules, (*SLOW_FRAMEWORK, "prometheus_client")) == []


def test_storage_event_handler_imports_no_build_time_code_fastapi_or_pyarrow(
    local_published: Published, tmp_path: Path
) -> None:
    import os

    # GIVEN a real signed model and an output location: the import verifies and loads it, then an SQS batch
    # (S3's test event) goes through Powertools' batch processor
    event = Path(__file__).parent / "events" / "sqs_s3_test_event.json"
    code = (
        "import modelfn.handlers.storage_event as h, json, pathlib\n"
        f"e = json.loads(pathlib.Path({str(event)!r}).read_text())\n"
        "assert h.handler(e, None) == {'batchItemFailures': []}"
    )
    env = {**os.environ, **local_published.env, "MODELFN_OUTPUT_URL": str(tmp_path / "out")}
    modules = _modules_after(code, env)
    # THEN no build-time code, no FastAPI/pydantic stack and no pyarrow was imported on the way
    assert _loaded(modules, (*BUILD_TIME, *SLOW_FRAMEWORK, "pyarrow")) == []


def test_cli_help_imports_no_runtime_or_framework() -> None:
    modules = _modules_after("import modelfn.cli")
    assert _loaded(modules, (*BUILD_TIME, "onnxruntime", "boto3", "fastapi")) == []


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("bundle", ("modelfn.store", "modelfn.repository")),  # the format knows nothing of where bundles live
        ("store", ("modelfn.bundle", "modelfn.repository")),  # stores know nothing of bundles
        ("serving", ("modelfn.packaging", "modelfn.adapters")),
        ("handlers", ("modelfn.packaging", "modelfn.adapters")),
    ],
)
def test_layers_import_only_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    package = Path(modelfn.__file__).parent / layer
    offenders = {
        f"{path.name}: {name}"
        for path in package.rglob("*.py")
        for name in _imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    }
    assert offenders == set()


def test_run_time_modules_take_the_version_from_its_own_module() -> None:
    # The package root re-exports build-time `package()`; run-time code names only modelfn._version.
    for layer in ("serving", "handlers", "runtime"):
        for path in (Path(modelfn.__file__).parent / layer).rglob("*.py"):
            assert "modelfn" not in _imported_modules(path), path


def test_import_modelfn_loads_neither_the_loader_nor_numpy() -> None:
    # `modelfn.load` and `modelfn.Predictor` are re-exported lazily: importing the package stays cheap
    modules = _modules_after("import modelfn")
    assert _loaded(modules, ("numpy", "onnxruntime", "boto3", "modelfn.loader", "modelfn.predictor")) == []


def test_wsgi_handler_with_the_flask_example_imports_no_build_time_code(local_published: Published) -> None:
    import os

    # GIVEN the Flask example behind the WSGI handler, loading a real signed model at import
    example = Path(__file__).resolve().parent.parent / "examples" / "flask-rest-api"
    env = {**os.environ, **local_published.env, "MODELFN_WSGI_APP": "app:app", "PYTHONPATH": str(example)}
    code = (
        "import modelfn.handlers.wsgi as h\n"
        "from modelfn.invoke import LocalLambdaContext, http_api_event\n"
        "r = h.handler(http_api_event(b'{\"rows\": [[1, 2, 3, 4]]}'), LocalLambdaContext())\n"
        "assert r['statusCode'] == 200, r"
    )
    # WHEN one request is served THEN no build-time code, FastAPI or pydantic was imported on the way
    modules = _modules_after(code, env)
    assert _loaded(modules, (*BUILD_TIME, *SLOW_FRAMEWORK)) == []
    assert "app" in modules and "flask" in modules  # the app really ran


def test_pillow_is_imported_only_once_an_image_bundle_serves_an_image(
    local_published: Published, tmp_path: Path, signing_key: SigningKey
) -> None:
    import os

    from tests.fixtures.bundles import publish
    from tests.serving.processing_models import solid, write_image_bundle

    # GIVEN the Lambda handler serving a bundle without image preprocessing, one JSON request served
    code = (
        "import modelfn.handlers.http as h\n"
        "from modelfn.invoke import LocalLambdaContext, http_api_event\n"
        "r = h.handler(http_api_event(b'{\"instances\": [[1, 2, 3, 4]]}'), LocalLambdaContext())\n"
        "assert r['statusCode'] == 200, r"
    )
    # THEN Pillow was never imported
    assert _loaded(_modules_after(code, {**os.environ, **local_published.env}), ("PIL",)) == []
    # GIVEN a signed image bundle: loading, verifying and warming it up import no Pillow either
    image = publish(write_image_bundle(tmp_path / "colour"), str(tmp_path / "image-store"), signing_key)
    picture = tmp_path / "red.png"
    picture.write_bytes(solid("red"))
    code = (
        "import modelfn.handlers.http as h, pathlib, json\n"
        "from modelfn.invoke import LocalLambdaContext, http_api_event\n"
        "assert 'PIL' not in sys.modules\n"
        f"body = pathlib.Path({str(picture)!r}).read_bytes()\n"
        "r = h.handler(http_api_event(body), LocalLambdaContext())\n"
        "assert r['statusCode'] == 200 and json.loads(r['body'])['labels'] == ['red'], r"
    )
    # WHEN an image is posted THEN Pillow is imported for it, and still nothing from build time or FastAPI
    modules = _modules_after(code, {**os.environ, **image.env})
    assert "PIL" in modules
    assert _loaded(modules, (*BUILD_TIME, *SLOW_FRAMEWORK)) == []
