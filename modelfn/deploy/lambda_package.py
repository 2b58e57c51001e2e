"""The slim Lambda zip, built by modelfn itself: the run-time dependencies for the runtime's Python and platform.

pip installs wheels for the target (``--platform``/``--python-version``/``--only-binary=:all:``), so
the building machine's OS, architecture and Python do not matter; then modelfn's run-time sources are
added, the rules in ``modelfn.deploy.prune`` drop what the function never loads, and the tree is zipped
deterministically (sorted entries, fixed timestamps and modes: the same inputs give the same bytes).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from modelfn.deploy.lambda_files import (
    ELF_MACHINES,
    check_native_arch,
    compile_bytecode,
    copy_modelfn_sources,
    package_files,
    write_deterministic_zip,
)
from modelfn.deploy.prune import apply_rules, check_kept_imports
from modelfn.errors import ConfigError, PackagingError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

Arch = Literal["x86_64", "arm64"]


@dataclasses.dataclass(frozen=True)
class LambdaRuntime:
    """A Lambda Python runtime: its identifier, OS and glibc (which decides the wheels it can load)."""

    identifier: str
    os: str
    glibc: tuple[int, int]


LAMBDA_RUNTIMES: Mapping[str, LambdaRuntime] = {
    "3.11": LambdaRuntime("python3.11", "Amazon Linux 2", (2, 26)),
    "3.12": LambdaRuntime("python3.12", "Amazon Linux 2023", (2, 34)),
    "3.13": LambdaRuntime("python3.13", "Amazon Linux 2023", (2, 34)),
    "3.14": LambdaRuntime("python3.14", "Amazon Linux 2023", (2, 34)),
}
ONNXRUNTIME_MIN_GLIBC = (2, 28)
"""onnxruntime 1.17 and later publish Linux wheels for manylinux_2_28 (glibc >= 2.28) only."""
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
"""Packages the Lambda Python runtime already has."""
LEFT_OUT = {
    "fastapi": "only the OpenAPI pages (/docs) use it; without it they answer a JSON 404",
    **{name: "the Lambda Python runtime provides it" for name in RUNTIME_PROVIDED},
}
"""Run-time dependencies of modelfn that the zip does not install, and why."""
UNZIPPED_LIMIT = 262_144_000
"""Lambda refuses a function whose unzipped code and layers exceed 250 MB."""
DIRECT_UPLOAD_LIMIT = 52_428_800
"""Above 50 MB a zip must go through S3 instead of a direct upload."""
PIP_TIMEOUT_S = 900


@dataclasses.dataclass(frozen=True)
class LambdaPackage:
    """A built Lambda zip and what went into it."""

    path: Path
    runtime: str
    """The Lambda runtime identifier to deploy it with (``python3.12``)."""
    arch: Arch
    requirements: tuple[str, ...]
    """What pip installed (modelfn's run-time set, minus what is left out, plus extras)."""
    pip_command: tuple[str, ...]
    unzipped_bytes: int
    zipped_bytes: int
    files: int
    pruned_bytes: Mapping[str, int]
    """Bytes each rule of ``modelfn.deploy.prune.RULES`` removed, by rule name."""

    @property
    def fits_direct_upload(self) -> bool:
        """Whether the zip may be uploaded directly (else deploy it through S3)."""
        return self.zipped_bytes <= DIRECT_UPLOAD_LIMIT


def build_lambda_zip(
    out: Path,
    *,
    python_version: str = "3.12",
    arch: Arch = "x86_64",
    extras: Sequence[str] = (),
    onnxruntime: str | None = None,
    bytecode: Path | str | None = None,
) -> LambdaPackage:
    """Build the Lambda deployment zip at ``out``; the contract ``modelfn deploy --target lambda`` builds on.

    The zip serves ``modelfn.handlers.http.handler`` and ``modelfn.handlers.storage_event.handler``
    (``modelfn.handlers.wsgi.handler`` needs ``extras=["serverless-wsgi", <the app's packages>]``).
    Deploy it with runtime ``LambdaPackage.runtime`` and architecture ``arch``.

    Args:
        out: Path of the zip to write (parents are created; an existing file is replaced atomically).
        python_version: The Lambda runtime's Python, one of ``LAMBDA_RUNTIMES`` (default 3.12, which
            SnapStart needs too).
        arch: ``x86_64`` or ``arm64`` (manylinux aarch64 wheels).
        extras: More requirement specifiers to install beside the run-time set (``"pyarrow>=16"``
            for Parquet batches, ``"Pillow"`` for image bundles); pruning applies to them too.
        onnxruntime: A requirement replacing pyproject's onnxruntime one (``"onnxruntime==1.16.3"``).
            Needed for python3.11: its Amazon Linux 2 has glibc 2.26, and onnxruntime 1.17+ ships
            only manylinux_2_28 wheels.
        bytecode: An interpreter of ``python_version`` to precompile the package with (unchecked-hash
            ``.pyc`` naming ``/var/task`` paths, still deterministic). Lambda's code directory is
            read-only, so without it every cold start compiles in memory. bench_lambda_package:
            importing the handler's modules takes about a third less time (40-130 ms here) for
            ~8.5 MB more unzipped. None (the default) ships sources only.

    Returns:
        The zip's path, runtime identifier, sizes, pruned bytes per rule and the pip command run.

    Raises:
        ConfigError: unknown Python version or arch, a bad requirement, or python3.11 without a
            compatible onnxruntime pin (the message gives the glibc reason).
        PackagingError: pip failed (its last lines are in the message), kept modelfn code imports a
            pruned module, a native library is built for another architecture, or the result
            exceeds Lambda's 250 MB unzipped limit.
    """
    runtime = _runtime(python_version, onnxruntime)
    if arch not in ELF_MACHINES:
        raise ConfigError(f"unknown Lambda architecture {arch!r}; choose one of {sorted(ELF_MACHINES)}", field="arch")
    requirements = runtime_requirements(python_version, arch, extras=extras, onnxruntime=onnxruntime)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelfn-lambda-") as tmp:
        root = Path(tmp) / "package"
        command = pip_command(root, python_version, arch, runtime.glibc, requirements)
        _run_pip(command, runtime.identifier, arch)
        copy_modelfn_sources(root)
        pruned = apply_rules(root)
        check_kept_imports(root)
        check_native_arch(root, arch)
        if bytecode is not None:
            compile_bytecode(root, Path(bytecode), python_version)
        files = package_files(root)
        unzipped = sum(path.stat().st_size for _, path in files)
        if unzipped > UNZIPPED_LIMIT:
            raise PackagingError(
                f"the Lambda package is {unzipped} bytes unzipped, over Lambda's {UNZIPPED_LIMIT}-byte limit; "
                "drop extras or move large dependencies to a container image",
                field="extras",
            )
        write_deterministic_zip(files, out)
    return LambdaPackage(
        path=out,
        runtime=runtime.identifier,
        arch=arch,
        requirements=requirements,
        pip_command=tuple(command),
        unzipped_bytes=unzipped,
        zipped_bytes=out.stat().st_size,
        files=len(files),
        pruned_bytes=pruned,
    )


def _runtime(python_version: str, onnxruntime: str | None) -> LambdaRuntime:
    runtime = LAMBDA_RUNTIMES.get(python_version)
    if runtime is None:
        raise ConfigError(
            f"no Lambda Python runtime {python_version!r}; choose one of {sorted(LAMBDA_RUNTIMES)}",
            field="python_version",
        )
    if runtime.glibc < ONNXRUNTIME_MIN_GLIBC and onnxruntime is None:
        have, need = ".".join(map(str, runtime.glibc)), ".".join(map(str, ONNXRUNTIME_MIN_GLIBC))
        raise ConfigError(
            f"the {runtime.identifier} Lambda runtime runs on {runtime.os} with glibc {have}, and onnxruntime 1.17 "
            f"and later publish Linux wheels only for glibc >= {need} (manylinux_2_28): use python_version 3.12 or "
            "3.13, or pin an onnxruntime with manylinux2014 wheels (onnxruntime='onnxruntime==1.16.3', which also "
            "needs extras=['numpy<2'])",
            field="python_version",
        )
    return runtime


def runtime_requirements(
    python_version: str, arch: Arch, *, extras: Sequence[str] = (), onnxruntime: str | None = None
) -> tuple[str, ...]:
    """modelfn's run-time requirements for the target, without ``LEFT_OUT``, plus ``extras``.

    Markers are evaluated here for the target Python and platform (pip would evaluate them for the
    interpreter running it), so the returned specifiers carry none.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "platform_machine": ELF_MACHINES[arch][0],
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    chosen: list[str] = []
    override = None
    if onnxruntime is not None:
        override = _parse(onnxruntime, "onnxruntime")
        if canonicalize_name(override.name) != "onnxruntime":
            raise ConfigError(
                f"onnxruntime must name the onnxruntime package, got {onnxruntime!r}", field="onnxruntime"
            )
    for spec in _project_dependencies():
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name in LEFT_OUT or (req.marker is not None and not req.marker.evaluate(environment)):
            continue
        chosen.append(_unmarked(override if name == "onnxruntime" and override is not None else req))
    for spec in extras:
        req = _parse(spec, "extras")
        if canonicalize_name(req.name) in RUNTIME_PROVIDED:
            raise ConfigError(
                f"{req.name} is provided by the Lambda Python runtime; leave it out of extras", field="extras"
            )
        chosen.append(_unmarked(req))
    return tuple(chosen)


def _parse(spec: str, field: str) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(spec)
    except InvalidRequirement as exc:
        raise ConfigError(f"{field}: {spec!r} is not a requirement specifier ({exc})", field=field) from exc


def _unmarked(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def _project_dependencies() -> list[str]:
    """``[project] dependencies`` of this source tree's pyproject.toml, else of the installed distribution."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "modelfn":
            return list(project.get("dependencies", []))
    from importlib.metadata import requires

    return [spec for spec in requires("modelfn") or [] if "extra ==" not in spec]


def pip_command(
    target: Path, python_version: str, arch: Arch, glibc: tuple[int, int], requirements: Sequence[str]
) -> list[str]:
    """pip's command installing ``requirements`` as wheels for the runtime's Python, glibc and architecture."""
    machine = ELF_MACHINES[arch][0]
    platforms = [f"manylinux_{glibc[0]}_{minor}_{machine}" for minor in range(glibc[1], 16, -1)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        *(arg for platform in [*platforms, f"manylinux2014_{machine}"] for arg in ("--platform", platform)),
        "--no-compile",
        "--no-input",
        "--disable-pip-version-check",
        *requirements,
    ]


def _run_pip(command: Sequence[str], runtime: str, arch: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"pip did not finish within {PIP_TIMEOUT_S} s", field="pip") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise PackagingError(
            f"pip could not install the run-time set for {runtime} on {arch} (exit {done.returncode}):\n{tail}",
            field="requirements",
        )
