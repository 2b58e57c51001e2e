"""The file-level steps of the Lambda package: modelfn's sources in, bytecode, architecture check, deterministic zip."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from modelfn.errors import ConfigError, PackagingError

ELF_MACHINES: Mapping[str, tuple[str, int]] = {"x86_64": ("x86_64", 62), "arm64": ("aarch64", 183)}
"""Lambda architecture -> (manylinux platform suffix, ELF e_machine)."""
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""Every zip entry's timestamp (the earliest a zip can hold), so rebuilds give equal bytes."""
COMPILE_TIMEOUT_S = 900


def copy_modelfn_sources(root: Path) -> None:
    """Copy what a modelfn wheel holds (every package's ``.py`` files and ``py.typed``) under ``root/modelfn``."""
    source = Path(__file__).resolve().parents[1]
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not path.is_file() or "__pycache__" in relative.parts:
            continue
        if path.suffix == ".py" or relative.as_posix() == "py.typed":
            target = root / "modelfn" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def compile_bytecode(root: Path, interpreter: Path, python_version: str) -> None:
    """Precompile every module under ``root`` with ``interpreter`` for Lambda's ``/var/task``, reproducibly."""
    probe = [str(interpreter), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    try:
        found = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=60).stdout.strip()
    except OSError as exc:
        raise ConfigError(f"bytecode: cannot run {interpreter} ({exc})", field="bytecode") from exc
    if found != python_version:
        raise ConfigError(
            f"bytecode: {interpreter} is Python {found or '?'}, the package targets {python_version}", field="bytecode"
        )
    command = [str(interpreter), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
               "-s", str(root), "-p", "/var/task", str(root)]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=COMPILE_TIMEOUT_S,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        raise PackagingError(f"compileall failed under {interpreter}:\n{tail}", field="bytecode")


def check_native_arch(root: Path, arch: Literal["x86_64", "arm64"]) -> None:
    """Refuse a shared library built for another machine than the target (an ELF header check)."""
    machine, wanted = ELF_MACHINES[arch]
    for path in sorted(root.rglob("*.so*")):
        if not path.is_file() or not (path.suffix == ".so" or ".so." in path.name):
            continue
        with path.open("rb") as handle:
            header = handle.read(20)
        if header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") != wanted:
            raise PackagingError(
                f"{path.relative_to(root)} is not built for {machine}; a wheel without a {arch} build slipped in",
                field="arch",
            )


def package_files(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) for every file under ``root``, sorted by name; links are refused."""
    files = []
    for path in root.rglob("*"):
        if path.is_symlink():
            raise PackagingError(f"the Lambda package may not hold links: {path.relative_to(root)}", field="path")
        if path.is_file():
            files.append((path.relative_to(root).as_posix(), path))
    return sorted(files)


def write_deterministic_zip(files: Sequence[tuple[str, Path]], out: Path, *, level: int = 9) -> None:
    """Zip ``files`` in the given order with fixed timestamps and modes, so equal inputs give equal bytes.

    Files are world-readable (Lambda runs the code as another user); executables keep their x bit.
    The zip is written beside ``out`` and renamed over it, so a reader never sees half a zip.
    """
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # Unix, so the modes above are honoured
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    os.replace(partial, out)
