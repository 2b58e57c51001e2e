"""Every file the Lambda package leaves out, in one list, each rule with the reason it is safe.

The rules run over a ``pip install --target`` directory (plus the modelfn sources) before it is
zipped. Each rule is a set of glob patterns relative to that directory; a pattern ending in ``/``
removes a whole directory. A rule may only drop what the function never imports or loads: the
package test serves a prediction from the pruned zip under the Lambda runtime's Python, and
``check_kept_imports`` refuses a package whose kept modelfn code imports a pruned modelfn module.
"""

from __future__ import annotations

import ast
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

from modelfn.errors import PackagingError


@dataclasses.dataclass(frozen=True)
class PruneRule:
    """Glob patterns (relative to the package root) removed from the Lambda package, and why."""

    name: str
    patterns: tuple[str, ...]
    reason: str


RULES: tuple[PruneRule, ...] = (
    PruneRule(
        "onnxruntime-c-api",
        ("onnxruntime/capi/libonnxruntime.so*",),
        "onnxruntime's C API library (34 MB) for C/C++ callers; the Python binding "
        "(onnxruntime_pybind11_state) carries its own copy and does not link it (readelf -d lists no such NEEDED)",
    ),
    PruneRule(
        "onnxruntime-tooling",
        (
            "onnxruntime/transformers/",
            "onnxruntime/tools/",
            "onnxruntime/quantization/",
            "onnxruntime/datasets/",
            "onnxruntime/backend/",
        ),
        "build-time tools: transformer graph optimizers, model conversion scripts, quantization (modelfn "
        "quantizes when it packages), sample data, and the ONNX backend-test API (it imports the onnx package)",
    ),
    PruneRule(
        "onnxruntime-tooling-deps",
        (
            "google/",
            "protobuf-*.dist-info/",
            "flatbuffers/",
            "flatbuffers-*.dist-info/",
            "sympy/",
            "sympy-*.dist-info/",
            "mpmath/",
            "mpmath-*.dist-info/",
        ),
        "protobuf, flatbuffers (and sympy + mpmath, which older onnxruntime releases require) serve only the "
        "tooling pruned above; the binding links its own protobuf, and `import onnxruntime` plus a session "
        "run import none of them",
    ),
    PruneRule(
        "numpy-build-and-test",
        (
            "numpy/**/tests/",
            "numpy/f2py/",
            "numpy/typing/",
            "numpy/_pyinstaller/",
            "numpy/_core/include/",
            "numpy/_core/lib/",
            "numpy/_core/_simd.*.so",
            "numpy/_core/_*_tests.*.so",
            "numpy/random/_examples/",
        ),
        "numpy's own test suite and its test-only extension modules (_simd, _*_tests), the Fortran wrapper "
        "generator, static-typing helpers (modelfn imports numpy.typing only under TYPE_CHECKING; numpy itself "
        "uses numpy._typing), PyInstaller hooks, cffi/numba/cython examples, and the C headers and static "
        "library for compiling extensions",
    ),
    PruneRule(
        "type-stubs",
        ("**/*.pyi",),
        "type stubs are read by type checkers only, never by the interpreter",
    ),
    PruneRule(
        "scripts-and-bytecode",
        ("bin/", "**/__pycache__/"),
        "console scripts (f2py, jp.py, onnxruntime_test) never run in a function; bytecode compiled by "
        "the build machine's interpreter would not match the runtime's Python",
    ),
    PruneRule(
        "runtime-provided",
        (
            "boto3/",
            "boto3-*.dist-info/",
            "botocore/",
            "botocore-*.dist-info/",
            "s3transfer/",
            "s3transfer-*.dist-info/",
        ),
        "the Lambda Python runtime provides boto3 and botocore (a second copy only adds ~25 MB)",
    ),
    PruneRule(
        "modelfn-build-time",
        (
            "modelfn/adapters/",
            "modelfn/packaging.py",
            "modelfn/packaging_processing.py",
            "modelfn/packaging_samples.py",
            "modelfn/processing_flags.py",
            "modelfn/compression.py",
            "modelfn/onnx_optimize.py",
            "modelfn/parity.py",
            "modelfn/converter_process.py",
            "modelfn/_convert_worker.py",
            "modelfn/bundle/schema.py",
            "modelfn/cli.py",
            "modelfn/_entry.py",
            "modelfn/commands/",
            "modelfn/quickstart.py",
            "modelfn/local.py",
            "modelfn/container.py",
            "modelfn/deploy/",
            "modelfn/emulate/",
            "modelfn/plan/",
            "modelfn/batch/spark_engine.py",
        ),
        "modelfn's build-time and off-Lambda code: framework adapters and the packaging pipeline (they need "
        "torch, sklearn, onnx ...), the command line (typer, rich), local and container serving (uvicorn), local "
        "Lambda emulation (aws-sam-cli), capacity planning, the Spark batch engine (pyspark) and this package "
        "builder; the handlers never import them (check_kept_imports makes sure)",
    ),
)
"""The one list of pruning rules, applied in this order."""

LAZY_BUILD_TIME_IMPORTS = frozenset({("modelfn/__init__.py", "modelfn.packaging")})
"""(kept file, pruned module) pairs allowed: ``modelfn.package()`` is the build-time API; handlers never call it."""


def apply_rules(root: Path, rules: tuple[PruneRule, ...] = RULES) -> dict[str, int]:
    """Delete what each rule matches under ``root``; bytes removed per rule name (0 when nothing matched)."""
    removed: dict[str, int] = {}
    for rule in rules:
        total = 0
        for pattern in rule.patterns:
            for path in _matches(root, pattern):
                total += _remove(path)
        removed[rule.name] = total
    return removed


def _matches(root: Path, pattern: str) -> Iterator[Path]:
    want_dir = pattern.endswith("/")
    for path in sorted(root.glob(pattern.rstrip("/"))):
        if path.is_symlink():
            raise PackagingError(f"the Lambda package may not hold links: {path.relative_to(root)}", field="path")
        if path.exists() and path.is_dir() == want_dir:
            yield path


def _remove(path: Path) -> int:
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return size
    size = path.stat().st_size
    path.unlink()
    return size


def check_kept_imports(root: Path, rules: tuple[PruneRule, ...] = RULES) -> None:
    """Refuse a package whose kept modelfn code imports a pruned modelfn module (at any depth, lazily too).

    Imports under ``if TYPE_CHECKING:`` never run and are ignored. Raises PackagingError naming the
    importing file, the module and the rule that pruned it.
    """
    pruned = _pruned_modules(rules)
    for path in sorted((root / "modelfn").rglob("*.py")):
        where = path.relative_to(root).as_posix()
        for module in sorted(_runtime_imports(path, root)):
            hit = next(((p, r) for p, r in pruned if module == p or module.startswith(p + ".")), None)
            if hit is not None and (where, hit[0]) not in LAZY_BUILD_TIME_IMPORTS:
                raise PackagingError(
                    f"{where} imports {module}, which the Lambda package prunes (rule {hit[1]!r}): "
                    "move the import out of run-time code or change the rule in modelfn/deploy/prune.py",
                    field="modelfn",
                )


def _pruned_modules(rules: tuple[PruneRule, ...]) -> list[tuple[str, str]]:
    """(dotted module prefix, rule name) for every pruned modelfn path."""
    out = []
    for rule in rules:
        for pattern in rule.patterns:
            if pattern.startswith("modelfn/"):
                dotted = pattern.rstrip("/").removesuffix(".py").replace("/", ".")
                out.append((dotted, rule.name))
    return out


def _runtime_imports(path: Path, root: Path) -> set[str]:
    """Absolute names of the modules a file imports outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.parent.relative_to(root).as_posix().split("/")
    names: set[str] = set()
    for node in _walk_skipping_type_checking(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*parts, node.module] if node.module else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _walk_skipping_type_checking(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield stmt
                yield from _walk_skipping_type_checking(stmt)
            continue
        yield child
        yield from _walk_skipping_type_checking(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
